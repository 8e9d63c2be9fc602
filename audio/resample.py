"""Streaming sample-rate conversion and re-framing of float32 mono audio."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

Samples = npt.NDArray[np.float32]


class StreamResampler:
    """Resample a float32 mono stream chunk by chunk without boundary clicks.

    soxr filters in blocks, so output arrives in bursts: at HQ it lags the input
    by 6-37 ms for 16 kHz <-> 24/48 kHz and by 12-115 ms for 16 kHz <-> 8 kHz.
    """

    def __init__(self, in_rate: int, out_rate: int, *, quality: str = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(
                in_rate, out_rate, 1, dtype="float32", quality=quality
            )

    def process(self, chunk: npt.ArrayLike) -> Samples:
        """Resample the next chunk; output length varies with the filter's state."""
        samples = np.ascontiguousarray(chunk, dtype=np.float32)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples)

    def flush(self) -> Samples:
        """Return the samples still held in the filter at the end of the stream."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


class FrameAssembler:
    """Cut a stream of arbitrary-length chunks into fixed-size frames."""

    def __init__(self, frame_samples: int) -> None:
        if frame_samples <= 0:
            raise ValueError("frame_samples must be positive")
        self.frame_samples = frame_samples
        self._partial = np.zeros(frame_samples, dtype=np.float32)
        self._filled = 0
        self._ready: list[Samples] = []

    @property
    def pending(self) -> int:
        """Return how many samples wait for the next frame to fill."""
        return self._filled

    def push(self, samples: npt.ArrayLike) -> None:
        """Add samples; complete frames become available from pop_frames()."""
        data = np.asarray(samples, dtype=np.float32)
        size = self.frame_samples
        pos = 0
        if self._filled:
            pos = min(len(data), size - self._filled)
            self._partial[self._filled : self._filled + pos] = data[:pos]
            self._filled += pos
            if self._filled < size:
                return
            self._ready.append(self._partial.copy())
            self._filled = 0
        whole = (len(data) - pos) // size * size
        if whole:
            # Copy, so frames never alias a buffer the caller may reuse.
            block = data[pos : pos + whole].copy()
            self._ready.extend(block.reshape(-1, size))
            pos += whole
        self._filled = len(data) - pos
        self._partial[: self._filled] = data[pos:]

    def pop_frames(self) -> list[Samples]:
        """Remove and return the complete frames, oldest first."""
        frames, self._ready = self._ready, []
        return frames
