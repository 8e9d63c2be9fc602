"""Bounded ring buffer that paces audio a client sends faster than real time, and the
trimmer that brings a live stream's standing backlog back to a target."""

from __future__ import annotations

from collections import deque

import numpy as np

# A 20 ms frame quieter than this (RMS, full scale 1.0) is silence the trimmer may drop.
SILENCE_DBFS = -50.0


class PlayoutBuffer:
    """Hold outbound float32 samples until the media clock reads them.

    Written by a socket 50 times a second and read by the media clock as often, per call:
    the common cases (a write or read that does not wrap around the ring) are one numpy
    operation each, and the counters are plain attributes.
    """

    def __init__(self, capacity_samples: int) -> None:
        if capacity_samples <= 0:
            raise ValueError("capacity_samples must be positive")
        self._ring = np.zeros(capacity_samples, dtype=np.float32)
        self.capacity = capacity_samples
        # Samples accepted since creation, minus any cleared; samples consumed (handed
        # out, or dropped as silence by `trim_silence`, which also counts them in
        # trimmed_total).
        self.written_total = 0
        self.played_total = 0
        self.trimmed_total = 0
        self._marks: deque[tuple[str, int]] = deque()

    @property
    def buffered(self) -> int:
        """Return the number of samples waiting to be played."""
        return self.written_total - self.played_total

    def write(self, samples: np.ndarray, *, clip: bool = False) -> int:
        """Append as many samples as fit and return how many were accepted.

        With ``clip``, samples are limited to [-1, 1] on their way into the ring (NaN
        must have been rejected before: it would pass through).
        """
        capacity = self.capacity
        count = min(len(samples), capacity - self.written_total + self.played_total)
        start = self.written_total % capacity
        end = start + count
        ring = self._ring
        if end <= capacity:
            self._store(
                ring[start:end],
                samples[:count] if count < len(samples) else samples,
                clip,
            )
        else:
            first = capacity - start
            self._store(ring[start:], samples[:first], clip)
            self._store(ring[: count - first], samples[first:count], clip)
        self.written_total += count
        return count

    @staticmethod
    def _store(into: np.ndarray, samples: np.ndarray, clip: bool) -> None:
        if clip:
            np.minimum(samples, 1.0, out=into)
            np.maximum(into, -1.0, out=into)
        else:
            into[:] = samples

    def read_into(self, out: np.ndarray) -> int:
        """Fill `out` with buffered audio, pad with silence, return real samples."""
        wanted = len(out)
        count = self.written_total - self.played_total
        if count > wanted:
            count = wanted
        if count == 0:
            out.fill(0.0)
            return 0
        capacity = self.capacity
        start = self.played_total % capacity
        end = start + count
        ring = self._ring
        if end <= capacity:
            out[:count] = ring[start:end]
        else:
            first = capacity - start
            out[:first] = ring[start:]
            out[first:count] = ring[: end - capacity]
        if count < wanted:
            out[count:] = 0.0
        self.played_total += count
        return count

    def trim_silence(self, frame: int, keep: int, limit: int, floor: float) -> int:
        """Drop up to ``limit`` silent frames at the head, keeping ``keep`` samples queued.

        A frame is dropped only when its energy (sum of squares) is below ``floor`` and
        so are the frame played just before it and the one after it: a word's quiet
        onset or tail is never cut, only the inside of a pause. Marks keep their
        positions, so one inside the dropped audio is due at once. Returns the number
        of samples dropped.
        """
        position = self.played_total
        # The frame played last is still in the ring unless new audio overwrote it.
        if (
            position < frame
            or self.written_total - position + frame > self.capacity
            or self._energy(position - frame, frame) >= floor
        ):
            return 0
        end = position + limit * frame
        head_silent = self._energy(position, frame) < floor
        while (
            head_silent
            and position < end
            and self.written_total - position >= max(keep + frame, 2 * frame)
        ):
            head_silent = self._energy(position + frame, frame) < floor
            if not head_silent:
                break
            position += frame
        dropped = position - self.played_total
        self.played_total = position
        self.trimmed_total += dropped
        return dropped

    def _energy(self, start: int, count: int) -> float:
        capacity = self.capacity
        ring = self._ring
        start %= capacity
        end = start + count
        if end <= capacity:
            part = ring[start:end]
            return float(np.dot(part, part))
        head, tail = ring[start:], ring[: end - capacity]
        return float(np.dot(head, head) + np.dot(tail, tail))

    @property
    def has_marks(self) -> bool:
        """Return whether any mark waits to be played (cheap, for the per-tick path)."""
        return bool(self._marks)

    def add_mark(self, name: str) -> None:
        """Record a mark that plays once everything written so far has played."""
        self._marks.append((name, self.written_total))

    def pop_played_marks(self) -> list[tuple[str, int]]:
        """Remove and return the marks playback has reached, oldest first."""
        played = []
        while self._marks and self._marks[0][1] <= self.played_total:
            played.append(self._marks.popleft())
        return played

    def clear(self) -> list[str]:
        """Drop all buffered audio and return the names of unreported marks."""
        # Rewinding the write position keeps later marks' positions in step with
        # played_total, as if the dropped audio had never been written.
        self.written_total = self.played_total
        names = [name for name, _ in self._marks]
        self._marks.clear()
        return names


class BacklogTrimmer:
    """Bring a live stream's standing backlog back to ``target`` samples, dropping silence.

    A stream that stalls (a network hiccup) underruns, then delivers what it owed in
    one burst and goes on in real time: from then on everything it says waits behind
    the burst. Such a backlog is *standing*: it stays over the target for a whole
    window of ``hold`` ticks while the client delivers audio at the rate it plays, in
    steps of at most ``slack`` samples between ticks and within ``slack`` of real time
    over the window. Only then is silence dropped (``PlayoutBuffer.trim_silence``, at
    most ``per_tick`` frames a tick) until the target is reached. Audio sent ahead on
    purpose (a TTS utterance queued at once or in bursts under backpressure, which
    then drains by itself) never looks like that and plays as sent.

    The caller ticks it only while the buffer holds more than the target after a read
    and resets it otherwise, so a stream at or under the target costs nothing here.
    """

    def __init__(
        self,
        buffer: PlayoutBuffer,
        *,
        target: int,
        frame: int,
        hold: int = 10,
        slack: int | None = None,
        per_tick: int = 4,
        silence_dbfs: float = SILENCE_DBFS,
    ) -> None:
        if target <= 0 or frame <= 0 or hold <= 0:
            raise ValueError("target, frame and hold must be positive")
        self.buffer = buffer
        self.target = target
        self.frame = frame
        self.hold = hold
        self.slack = 5 * frame if slack is None else slack
        self.per_tick = per_tick
        self.floor = frame * 10 ** (silence_dbfs / 10)  # energy of a frame at that RMS
        self.active = False
        self.ticks = 0  # ticks of the current window; 0: not over the target
        self._window_start = 0
        self._last_written = 0
        self._steady = True

    def reset(self) -> None:
        """The buffer is back at or under the target (or was cleared): start over."""
        self.active = False
        self.ticks = 0

    def tick(self) -> int:
        """Account one tick over the target; return the samples dropped as silence."""
        written = self.buffer.written_total
        if self.ticks == 0:
            self._open_window(written)
        else:
            if written - self._last_written > self.slack:
                self._steady = False
            self._last_written = written
            self.ticks += 1
            if self.ticks > self.hold:
                arrived = written - self._window_start
                expected = self.hold * self.frame
                self.active = self._steady and abs(arrived - expected) <= self.slack
                self._open_window(written)
        if not self.active:
            return 0
        return self.buffer.trim_silence(
            self.frame, self.target, self.per_tick, self.floor
        )

    def _open_window(self, written: int) -> None:
        self.ticks = 1
        self._window_start = written
        self._last_written = written
        self._steady = True
