"""Wire formats of dial-out streams and their per-track codecs. No Django here.

A call moves 20 ms frames of 16 kHz float32. A stream speaks one of four formats in
20 ms chunks: G.711 μ-law at 8 kHz, 16-bit little-endian PCM at 16 or 24 kHz, or
32-bit little-endian float at 16 kHz. Rate conversion keeps one streaming resampler
per track and direction, so chunk boundaries never click. Towards the receiver it is a
steady polyphase filter: each 20 ms of the call becomes 20 ms on the wire at once, so
chunks leave every 20 ms whatever the format (soxr's block-wise output would send 8 kHz
in bursts of five every 100 ms). From the receiver, whose chunks arrive as the network
delivers them anyway, it is soxr; a FrameAssembler cuts what comes out into chunks of
exactly 20 ms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from audio import FRAME_SAMPLES, SAMPLE_RATE
from audio.codecs import (
    InvalidPcm,
    decode_f32le,
    encode_f32le,
    float_to_pcm16,
    mulaw_decode,
    mulaw_encode,
    pcm16_to_float,
)
from audio.resample import FrameAssembler, SteadyResampler, StreamResampler

Samples = npt.NDArray[np.float32]


def _encode_pcm16(samples: Samples) -> bytes:
    return float_to_pcm16(samples).astype("<i2", copy=False).tobytes()


@dataclass(frozen=True)
class WireFormat:
    name: str
    rate: int
    sample_bytes: int
    # What `start` announces: Twilio's MIME name for μ-law, else the same names as the
    # live media socket's `ready` frame.
    encoding: str
    encode: Callable[[Samples], bytes]
    decode: Callable[[bytes], Samples]

    @property
    def chunk_samples(self) -> int:
        """Samples in one 20 ms chunk."""
        return self.rate // 50

    @property
    def chunk_bytes(self) -> int:
        return self.chunk_samples * self.sample_bytes


# The receiving direction's default resampling: SteadyResampler, not soxr.
STEADY = "steady"

FORMATS: dict[str, WireFormat] = {
    fmt.name: fmt
    for fmt in (
        WireFormat("mulaw_8000", 8000, 1, "audio/x-mulaw", mulaw_encode, mulaw_decode),
        WireFormat("pcm16_16000", 16000, 2, "pcm_s16le", _encode_pcm16, pcm16_to_float),
        WireFormat("pcm16_24000", 24000, 2, "pcm_s16le", _encode_pcm16, pcm16_to_float),
        WireFormat("f32_16000", 16000, 4, "pcm_f32le", encode_f32le, decode_f32le),
    )
}


class TrackEncoder:
    """Turn the call's 20 ms frames of one track into 20 ms chunks of a wire format."""

    def __init__(self, fmt: WireFormat, *, quality: str = STEADY) -> None:
        # ``quality`` is the receiving direction's (TrackDecoder); sending is steady.
        self.format = fmt
        self.quality = quality
        self._resampler: SteadyResampler | None = None
        self._assembler: FrameAssembler | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the resampler's state: the next frame starts a fresh stream."""
        if self.format.rate != SAMPLE_RATE:
            self._resampler = SteadyResampler(SAMPLE_RATE, self.format.rate)
            self._assembler = FrameAssembler(self.format.chunk_samples)

    def encode(self, frame: Samples) -> list[bytes]:
        """Encode one call frame; resampled formats yield 0..n chunks per frame."""
        if self._resampler is None or self._assembler is None:
            return [self.format.encode(frame)]
        self._assembler.push(self._resampler.process(frame))
        return [self.format.encode(chunk) for chunk in self._assembler.pop_frames()]


class TrackDecoder:
    """Turn a receiver's payloads (any length) into 16 kHz samples for the call.

    ``quality`` ``"steady"`` (the default) resamples 8 and 24 kHz with the polyphase
    filter that keeps step with its input (a few milliseconds behind); a soxr quality
    (``"HQ"`` …) uses soxr's stream filter, which hands 8 kHz over in ~100 ms bursts.
    """

    def __init__(self, fmt: WireFormat, *, quality: str = STEADY) -> None:
        self.format = fmt
        self.quality = quality
        self._resampler: SteadyResampler | StreamResampler | None = None
        self.reset()

    def reset(self) -> None:
        if self.format.rate == SAMPLE_RATE:
            return
        if self.quality == STEADY:
            self._resampler = SteadyResampler(self.format.rate, SAMPLE_RATE)
        else:
            self._resampler = StreamResampler(
                self.format.rate, SAMPLE_RATE, quality=self.quality
            )

    def decode(self, payload: bytes) -> Samples:
        """Decode a payload; raise InvalidPcm when it is not whole samples."""
        if len(payload) % self.format.sample_bytes:
            raise InvalidPcm(
                f"{self.format.name} payloads are whole {self.format.sample_bytes}-byte samples"
            )
        samples = self.format.decode(payload)
        if self._resampler is None:
            return samples
        return self._resampler.process(samples)

    def flush(self) -> Samples:
        """Return what the resampler still holds, and start a fresh stream after it.

        Called at a mark, so the audio sent before the mark is all in the playout buffer
        when the mark is placed behind it.
        """
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        tail = self._resampler.flush()
        self.reset()
        return tail


def chunks_in(fmt: WireFormat, payload_bytes: int) -> int:
    """How many 20 ms chunks a payload of this many bytes holds (rounded up)."""
    return -(-payload_bytes // fmt.chunk_bytes)


__all__ = [
    "FORMATS",
    "FRAME_SAMPLES",
    "InvalidPcm",
    "TrackDecoder",
    "TrackEncoder",
    "WireFormat",
    "chunks_in",
]
