"""Bounded ring buffer that paces audio a client sends faster than real time."""

from __future__ import annotations

from collections import deque

import numpy as np


class PlayoutBuffer:
    """Hold outbound float32 samples until the media clock reads them."""

    def __init__(self, capacity_samples: int) -> None:
        if capacity_samples <= 0:
            raise ValueError("capacity_samples must be positive")
        self._ring = np.zeros(capacity_samples, dtype=np.float32)
        self._written_total = 0
        self._played_total = 0
        self._marks: deque[tuple[str, int]] = deque()

    @property
    def capacity(self) -> int:
        """Return the most samples the buffer can hold."""
        return len(self._ring)

    @property
    def buffered(self) -> int:
        """Return the number of samples waiting to be played."""
        return self._written_total - self._played_total

    @property
    def written_total(self) -> int:
        """Return the samples accepted since creation, minus any cleared."""
        return self._written_total

    @property
    def played_total(self) -> int:
        """Return the real samples handed out by reads since creation."""
        return self._played_total

    def write(self, samples: np.ndarray) -> int:
        """Append as many samples as fit and return how many were accepted."""
        count = min(len(samples), self.capacity - self.buffered)
        start = self._written_total % self.capacity
        first = min(count, self.capacity - start)
        self._ring[start : start + first] = samples[:first]
        self._ring[: count - first] = samples[first:count]
        self._written_total += count
        return count

    def read_into(self, out: np.ndarray) -> int:
        """Fill `out` with buffered audio, pad with silence, return real samples."""
        count = min(len(out), self.buffered)
        start = self._played_total % self.capacity
        first = min(count, self.capacity - start)
        out[:first] = self._ring[start : start + first]
        out[first:count] = self._ring[: count - first]
        out[count:] = 0.0
        self._played_total += count
        return count

    @property
    def has_marks(self) -> bool:
        """Return whether any mark waits to be played (cheap, for the per-tick path)."""
        return bool(self._marks)

    def add_mark(self, name: str) -> None:
        """Record a mark that plays once everything written so far has played."""
        self._marks.append((name, self._written_total))

    def pop_played_marks(self) -> list[tuple[str, int]]:
        """Remove and return the marks playback has reached, oldest first."""
        played = []
        while self._marks and self._marks[0][1] <= self._played_total:
            played.append(self._marks.popleft())
        return played

    def clear(self) -> list[str]:
        """Drop all buffered audio and return the names of unreported marks."""
        # Rewinding the write position keeps later marks' positions in step with
        # played_total, as if the dropped audio had never been written.
        self._written_total = self._played_total
        names = [name for name, _ in self._marks]
        self._marks.clear()
        return names
