"""Incremental mono 16-bit WAV recording that can be finalised after a crash."""

from __future__ import annotations

import os
import struct
from types import TracebackType
from typing import BinaryIO, Self

import numpy as np
import numpy.typing as npt

from audio.codecs import float_to_pcm16

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_SIZE = struct.Struct("<I")


class WavWriter:
    """Record float32 audio to a 16-bit PCM WAV file, one second at a time.

    Mono unless ``channels`` says otherwise; several channels are written only through
    ``write_pcm16``, as interleaved frames (one row of ``channels`` samples each).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int = 16_000,
        channels: int = 1,
    ) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        align = 2 * channels
        # Closed by close(); the writer outlives any single `with` block.
        self._file = open(path, "wb")  # noqa: SIM115
        # The sizes say "empty" until close(); repair_wav_header() fixes them otherwise.
        self._file.write(
            _HEADER.pack(
                b"RIFF", 36, b"WAVE", b"fmt ", 16, 1, channels,
                sample_rate, sample_rate * align, align, 16, b"data", 0,
            )
        )  # fmt: skip
        # On disk at once, so even a writer that dies in its first second leaves
        # a file repair_wav_header() can finalise.
        self._file.flush()
        # One conversion and file write per second of audio, not one per frame.
        self._pending = np.zeros(sample_rate, dtype=np.float32)
        self._filled = 0
        self._flushed = 0

    @property
    def samples_written(self) -> int:
        """Return the samples (frames, with several channels) accepted so far."""
        return self._flushed + self._filled

    def write(self, samples: npt.ArrayLike) -> None:
        """Append float samples (mono); they are stored as 16-bit PCM."""
        if self.channels != 1:
            raise ValueError("float samples are written to mono files only")
        data = np.asarray(samples)
        pos = 0
        while pos < len(data):
            take = min(len(data) - pos, len(self._pending) - self._filled)
            self._pending[self._filled : self._filled + take] = data[pos : pos + take]
            self._filled += take
            pos += take
            if self._filled == len(self._pending):
                self.flush()

    def write_pcm16(self, pcm: npt.NDArray[np.int16]) -> None:
        """Append samples already converted to 16-bit, straight to the file.

        With several channels, ``pcm`` is ``(frames, channels)``.
        """
        if self._filled:
            self.flush()
        self._file.write(np.ascontiguousarray(pcm, dtype="<i2").data)
        self._file.flush()
        self._flushed += len(pcm)

    def flush(self) -> None:
        """Hand the buffered samples to the operating system."""
        if not self._filled:
            return
        pcm = float_to_pcm16(self._pending[: self._filled])
        self._file.write(pcm.astype("<i2", copy=False).data)
        self._file.flush()
        self._flushed += self._filled
        self._filled = 0

    def close(self) -> None:
        """Flush the remaining samples and write the final header sizes."""
        if self._file.closed:
            return
        self.flush()
        _write_sizes(
            self._file,
            data_start=_HEADER.size,
            data_bytes=self._flushed * 2 * self.channels,
        )
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def repair_wav_header(path: str | os.PathLike[str]) -> int:
    """Fix a WAV's RIFF and data sizes from its length and return its samples."""
    with open(path, "r+b") as file:
        riff, _, wave = struct.unpack("<4sI4s", file.read(12))
        if riff != b"RIFF" or wave != b"WAVE":
            raise ValueError(f"{path} is not a WAV file")
        block_align = 0
        while True:
            chunk = file.read(8)
            if len(chunk) < 8:
                raise ValueError(f"{path} has no data chunk")
            chunk_id, size = struct.unpack("<4sI", chunk)
            if chunk_id == b"data":
                break
            body = file.read(size + size % 2)
            if chunk_id == b"fmt ":
                (block_align,) = struct.unpack_from("<H", body, 12)
        if not block_align:
            raise ValueError(f"{path} has no fmt chunk before its data")
        data_start = file.tell()
        file_size = file.seek(0, os.SEEK_END)
        data_bytes = (file_size - data_start) // block_align * block_align
        # A crash can leave half a sample at the end; readers reject it.
        file.truncate(data_start + data_bytes)
        _write_sizes(file, data_start=data_start, data_bytes=data_bytes)
    return data_bytes // block_align


def _write_sizes(file: BinaryIO, *, data_start: int, data_bytes: int) -> None:
    file.seek(4)
    file.write(_SIZE.pack(data_start + data_bytes - 8))
    file.seek(data_start - 4)
    file.write(_SIZE.pack(data_bytes))
