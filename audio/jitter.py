"""Jitter buffer that turns RTP-style audio packets into a steady stream of frames."""

from __future__ import annotations

import bisect
import threading

import numpy as np
import numpy.typing as npt

from audio import FRAME_SAMPLES, SAMPLE_RATE

Samples = npt.NDArray[np.float32]

# Sequence numbers this far behind the newest one are still recognised as duplicates.
_SEQUENCE_WINDOW = 1024
_SEQUENCE_WINDOW_MASK = (1 << _SEQUENCE_WINDOW) - 1
# The first frame of a gap repeats the last real frame at this gain; later ones are
# silent, since repeating a 20 ms frame for longer turns into an audible buzz.
CONCEALMENT_GAIN = 0.5


def _unwrap(value: int, reference: int, modulus: int) -> int:
    """Return the value nearest ``reference`` congruent to ``value`` (power-of-2 modulus)."""
    half = modulus >> 1
    return reference + ((value - reference + half) & (modulus - 1)) - half


class JitterBuffer:
    """Reorder network audio packets and hand them out one frame per media-clock tick.

    A network thread calls :meth:`put` with each packet's 16-bit sequence number,
    32-bit timestamp (``clock_rate`` ticks a second, the sample rate unless given) and
    float32 samples; the media clock calls :meth:`read_into` once a frame. One lock,
    held for a few slice copies, makes one writer and one reader thread safe.

    Samples are placed by timestamp in a ring of ``max_ms`` of audio, so packets of any
    length (10, 20, 30 ms...) and out-of-order arrivals reassemble sample for sample.
    Sequence numbers only recognise duplicates and count losses, so a timestamp jump
    with consecutive sequence numbers (a sender pausing) is silence, not loss.

    Playout starts once ``target_ms`` of audio is buffered, and starts again the same
    way after an underrun (a frame the buffered audio cannot fill): playout stalls
    rather than skip audio that was received. A gap with later audio already buffered
    is a loss: its first frame repeats the previous frame at half amplitude if that
    frame was entirely real, and further missing frames are silent. A burst that
    would hold more than ``max_ms`` drops the oldest unplayed audio. One buffer serves
    one RTP stream: a new SSRC (its sequence numbers and timestamps start afresh)
    needs a new buffer.

    Counters (packets unless noted; plain attributes, read without the lock):
    ``received`` every packet put; ``duplicates`` dropped as already received;
    ``late`` arrived after playout passed their first sample (what is still unplayed
    is used); ``lost`` sequence numbers playout passed without their packet, late ones
    included; ``overflow_dropped`` discarded to keep within ``max_ms``; ``underruns``
    (events); ``concealed_frames`` (frames played with concealed samples).
    """

    def __init__(
        self,
        *,
        frame_samples: int = FRAME_SAMPLES,
        target_ms: int = 60,
        max_ms: int = 200,
        sample_rate: int = SAMPLE_RATE,
        clock_rate: int | None = None,
    ) -> None:
        clock_rate = sample_rate if clock_rate is None else clock_rate
        capacity = max_ms * sample_rate // 1000
        target = target_ms * sample_rate // 1000
        if min(frame_samples, sample_rate, clock_rate) <= 0:
            raise ValueError(
                "frame_samples, sample_rate and clock_rate must be positive"
            )
        if not frame_samples <= capacity or not 0 <= target <= capacity:
            raise ValueError("need 0 <= target_ms <= max_ms and a frame within max_ms")
        self.frame_samples = frame_samples
        self.sample_rate = sample_rate
        self.clock_rate = clock_rate
        self.capacity = capacity
        # Playout cannot start on less than a frame: it would underrun at once.
        self._target = max(target, frame_samples)
        # One frame beyond the capacity keeps the last played frame intact for
        # concealment however full the buffer is.
        self._ring = np.zeros(capacity + frame_samples, dtype=np.float32)
        self._lock = threading.Lock()

        # Positions count samples from the first packet's timestamp. Everything before
        # _play has been played or discarded; None until the first packet arrives.
        self._play: int | None = None
        self._end = 0  # one past the newest held sample
        self._playing = False
        # Held packets as (start, end, extended sequence), sorted by start.
        self._packets: list[tuple[int, int, int]] = []
        self._first_timestamp = 0
        self._newest_timestamp = 0
        self._newest_sequence: int | None = None
        self._seen = 0  # bit i: sequence number (_newest_sequence - i) was put
        self._retired_sequence: int | None = None
        self._previous_real = False  # the frame before _play was played whole

        self.received = 0
        self.duplicates = 0
        self.late = 0
        self.lost = 0
        self.overflow_dropped = 0
        self.underruns = 0
        self.concealed_frames = 0

    @property
    def playing(self) -> bool:
        """Return whether playout runs (False while filling to the target)."""
        return self._playing

    @property
    def depth_ms(self) -> float:
        """Return how much audio, gaps included, waits ahead of playout, in ms."""
        with self._lock:
            low = self._low()
            depth = 0 if low is None else max(self._end - low, 0)
        return depth * 1000 / self.sample_rate

    def put(self, sequence: int, timestamp: int, samples: npt.ArrayLike) -> bool:
        """Store a packet's samples; return False if it was dropped altogether."""
        data = np.asarray(samples, dtype=np.float32)
        # Python ints: numpy integers would overflow in the unwrapping arithmetic.
        sequence, timestamp = int(sequence), int(timestamp)
        with self._lock:
            self.received += 1
            newest = self._newest_sequence
            if newest is None:
                self._first_timestamp = self._newest_timestamp = timestamp
                self._newest_sequence = newest = sequence
            extended = _unwrap(sequence, newest, 1 << 16)
            if extended > newest:
                shift = extended - newest
                self._seen = (
                    (self._seen << shift | 1) & _SEQUENCE_WINDOW_MASK
                    if shift < _SEQUENCE_WINDOW
                    else 1
                )
                self._newest_sequence = extended
            elif newest - extended >= _SEQUENCE_WINDOW:
                self.late += 1
                return False
            else:
                bit = 1 << (newest - extended)
                if self._seen & bit:
                    self.duplicates += 1
                    return False
                self._seen |= bit

            stamp = _unwrap(timestamp, self._newest_timestamp, 1 << 32)
            if stamp > self._newest_timestamp:
                self._newest_timestamp = stamp
            start = stamp - self._first_timestamp
            if self.clock_rate != self.sample_rate:
                start = start * self.sample_rate // self.clock_rate
            return self._store(start, data, extended)

    def _store(self, start: int, data: Samples, sequence: int) -> bool:
        end = start + len(data)
        if end == start:
            return False
        play = self._play
        if play is not None and start < play:
            self.late += 1
            if end <= play:
                return False
            data = data[play - start :]
            start = play

        low = play if self._playing else self._low()
        if low is None or start < low:
            low = start
        high = end if not self._packets or end > self._end else self._end
        if high - low > self.capacity:
            floor = high - self.capacity
            if end <= floor:
                # Older than anything the ring can still hold alongside newer audio.
                self.late += 1
                return False
            self._discard_before(floor)
            if start < floor:
                data = data[floor - start :]
                start = floor

        self._copy_in(start, data)
        bisect.insort(self._packets, (start, end, sequence))
        if end > self._end or len(self._packets) == 1:
            self._end = end
        return True

    def read_into(self, out: Samples) -> int:
        """Fill ``out`` with the next frame and return how many samples were real."""
        count = len(out)
        if count != self.frame_samples:
            raise ValueError("read_into takes exactly one frame")
        with self._lock:
            if not self._playing:
                low = self._low()
                if low is None or self._end - low < self._target:
                    out.fill(0.0)
                    self._previous_real = False
                    return 0
                self._playing = True
                self._play = low

            start = self._play
            assert start is not None
            end = start + count
            if self._end < end:
                # Underrun: keep what is buffered and fill up to the target again.
                self.underruns += 1
                self._playing = False
                self._conceal(out, start, None)
                return 0

            self._copy_out(start, out)
            if self._covered_until(start, end) >= end:
                real = count
                self._previous_real = True
            else:
                have = self._coverage(start, end)
                real = int(have.sum())
                self.concealed_frames += 1
                self._conceal(out, start, have)
            self._play = end
            self._retire(end, dropped=False)
        return real

    def _low(self) -> int | None:
        # The earliest position the ring holds: the play position while playing,
        # else the first held sample (never before anything already played).
        if self._playing:
            return self._play
        if not self._packets:
            return None
        first = self._packets[0][0]
        play = self._play
        return first if play is None or first > play else play

    def _covered_until(self, start: int, end: int) -> int:
        # How far from ``start`` the held packets cover without a hole; usually
        # decided by the first one or two packets.
        reach = start
        for first, last, _ in self._packets:
            if first > reach:
                break
            if last > reach:
                reach = last
                if reach >= end:
                    break
        return reach

    def _coverage(self, start: int, end: int) -> npt.NDArray[np.bool_]:
        have = np.zeros(end - start, dtype=bool)
        for first, last, _ in self._packets:
            if first >= end:
                break
            if last > start:
                have[max(first - start, 0) : last - start] = True
        return have

    def _copy_in(self, start: int, data: Samples) -> None:
        size = len(self._ring)
        offset = start % size
        count = len(data)
        if offset + count <= size:
            self._ring[offset : offset + count] = data
        else:
            first = size - offset
            self._ring[offset:] = data[:first]
            self._ring[: count - first] = data[first:]

    def _copy_out(self, start: int, out: Samples) -> None:
        size = len(self._ring)
        offset = start % size
        count = len(out)
        if offset + count <= size:
            out[:] = self._ring[offset : offset + count]
        else:
            first = size - offset
            out[:first] = self._ring[offset:]
            out[first:] = self._ring[: count - first]

    def _conceal(
        self, out: Samples, start: int, have: npt.NDArray[np.bool_] | None
    ) -> None:
        # Fill the samples ``have`` marks missing, or the whole frame if it is None.
        if self._previous_real:
            previous = np.empty_like(out)
            self._copy_out(start - len(out), previous)
            previous *= CONCEALMENT_GAIN
            if have is None:
                out[:] = previous
            else:
                np.copyto(out, previous, where=~have)
        elif have is None:
            out.fill(0.0)
        else:
            out[~have] = 0.0
        self._previous_real = False

    def _discard_before(self, floor: int) -> None:
        if self._play is None or floor > self._play:
            self._play = floor
            # Playout skips ahead: the frame before it is no longer the last played.
            self._previous_real = False
        self._retire(floor, dropped=True)

    def _retire(self, position: int, *, dropped: bool) -> None:
        # Forget packets that end by ``position``, counting the sequence numbers
        # between them that never arrived.
        packets = self._packets
        while packets and packets[0][1] <= position:
            sequence = packets.pop(0)[2]
            if dropped:
                self.overflow_dropped += 1
            last = self._retired_sequence
            if last is None or sequence > last:
                if last is not None:
                    self.lost += sequence - last - 1
                self._retired_sequence = sequence
