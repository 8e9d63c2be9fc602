"""Bounded ring buffer that paces audio a client sends faster than real time."""

from __future__ import annotations

from collections import deque

import numpy as np


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
        # Samples accepted since creation, minus any cleared; real samples handed out.
        self.written_total = 0
        self.played_total = 0
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
