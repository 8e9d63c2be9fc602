"""Conversions between wire formats and the internal float32 samples."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float32]
Pcm16 = npt.NDArray[np.int16]

_PCM_BYTES = (bytes, bytearray, memoryview)
_PCM16_LE = np.dtype("<i2")
_PCM16_SCALE = np.float32(1 / 32768)


class InvalidPcm(ValueError):
    """Reject audio bytes that are not well-formed PCM."""

    code = "invalid_pcm_frame"


def decode_f32le(data: bytes) -> Samples:
    """Decode Float32LE bytes into samples clipped to [-1, 1]."""
    if len(data) % 4:
        raise InvalidPcm("Float32LE audio must be a whole number of 4-byte samples")
    raw = np.frombuffer(data, dtype="<f4")
    if not np.isfinite(raw).all():
        raise InvalidPcm("Float32LE audio must not contain NaN or infinity")
    return _clipped(raw)


def encode_f32le(samples: npt.ArrayLike) -> bytes:
    """Encode samples as Float32LE bytes."""
    return np.asarray(samples, dtype="<f4").tobytes()


def float_to_pcm16(samples: npt.ArrayLike) -> Pcm16:
    """Convert float samples to int16, clipping to [-1, 1] first."""
    return scaled_to_pcm16(np.multiply(samples, 32767, dtype=np.float32))


def scaled_to_pcm16(scaled: npt.NDArray[np.float32]) -> Pcm16:
    """Round float32 samples already multiplied by 32767 to int16, in place.

    Clipping after scaling (to ±32767) gives exactly ``float_to_pcm16``'s result, in
    one pass fewer than clipping before; ``scaled`` is overwritten.
    """
    np.clip(scaled, -32767, 32767, out=scaled)
    return np.rint(scaled, out=scaled).astype(np.int16)


def pcm16_to_float(samples: Pcm16 | bytes) -> Samples:
    """Convert int16 samples, or their little-endian bytes, to float32."""
    # On the media path for every frame a carrier hands over: a cast and an in-place
    # scale (exact: a power of two) cost about half of one multiply into float32.
    if isinstance(samples, _PCM_BYTES):
        if len(samples) % 2:
            raise InvalidPcm("PCM16 audio must be a whole number of 2-byte samples")
        samples = np.frombuffer(samples, dtype=_PCM16_LE)
    out = np.asarray(samples).astype(np.float32)
    out *= _PCM16_SCALE
    return out


def _clipped(samples: npt.ArrayLike) -> Samples:
    # A maximum/minimum pair costs about half of np.clip on 20 ms frames.
    out = np.maximum(samples, -1.0, dtype=np.float32)
    return np.minimum(out, 1.0, out=out)


def _build_mulaw_tables() -> tuple[npt.NDArray[np.uint8], Pcm16]:
    # Follows ITU-T G.191's ulaw_compress/ulaw_expand, which take the one's
    # complement of negative samples (Sun's widely copied g711.c negates them
    # instead and so differs on some negative inputs).
    pcm = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
    magnitude = np.where(pcm < 0, ~pcm, pcm)
    biased = np.minimum((magnitude >> 2) + 33, 0x1FFF)
    segment = np.searchsorted(64 << np.arange(7), biased, side="right")
    mantissa = (biased >> (segment + 1)) & 0xF
    code = ((7 - segment) << 4) | (15 - mantissa) | np.where(pcm >= 0, 0x80, 0)
    encode = code.astype(np.uint8)

    inverted = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (inverted >> 4) & 7
    step = 8 << exponent
    magnitude_out = (128 << exponent) + step * (inverted & 0xF) + step // 2 - 132
    sign = np.where(np.arange(256) < 0x80, -1, 1)
    decode = (sign * magnitude_out).astype(np.int16)
    return encode, decode


# Indexed by int16 samples reinterpreted as uint16, and by μ-law bytes.
_ULAW_ENCODE, _ULAW_DECODE = _build_mulaw_tables()
_ULAW_DECODE_FLOAT = pcm16_to_float(_ULAW_DECODE)


def pcm16_to_mulaw(samples: Pcm16) -> bytes:
    """Encode int16 samples as G.711 μ-law bytes."""
    pcm = np.asarray(samples, dtype=np.int16)
    return _ULAW_ENCODE[pcm.view(np.uint16)].tobytes()


def mulaw_to_pcm16(data: bytes) -> Pcm16:
    """Decode G.711 μ-law bytes to int16 samples."""
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def mulaw_encode(samples: npt.ArrayLike) -> bytes:
    """Encode float samples as G.711 μ-law bytes."""
    return pcm16_to_mulaw(float_to_pcm16(samples))


def mulaw_decode(data: bytes) -> Samples:
    """Decode G.711 μ-law bytes to float32 samples."""
    return _ULAW_DECODE_FLOAT[np.frombuffer(data, dtype=np.uint8)]


def _build_alaw_tables() -> tuple[npt.NDArray[np.uint8], Pcm16]:
    # Follows ITU-T G.191's alaw_compress/alaw_expand: 13-bit magnitudes (one's
    # complement for negative samples), seven segments above a linear one, and every
    # even bit of the code word inverted on the wire.
    pcm = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
    magnitude = np.where(pcm < 0, ~pcm, pcm) >> 4
    segment = np.searchsorted(16 << np.arange(7), magnitude, side="right")
    mantissa = np.where(
        segment == 0, magnitude, (magnitude >> np.maximum(segment - 1, 0)) & 0xF
    )
    code = (segment << 4) | mantissa | np.where(pcm >= 0, 0x80, 0)
    encode = (code ^ 0x55).astype(np.uint8)

    toggled = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (toggled >> 4) & 7
    step_mantissa = (toggled & 0xF) + np.where(exponent > 0, 16, 0)
    magnitude_out = ((step_mantissa << 4) + 8) << np.maximum(exponent - 1, 0)
    sign = np.where(toggled & 0x80, 1, -1)
    decode = (sign * magnitude_out).astype(np.int16)
    return encode, decode


# Indexed by int16 samples reinterpreted as uint16, and by A-law bytes.
_ALAW_ENCODE, _ALAW_DECODE = _build_alaw_tables()
_ALAW_DECODE_FLOAT = pcm16_to_float(_ALAW_DECODE)


def pcm16_to_alaw(samples: Pcm16) -> bytes:
    """Encode int16 samples as G.711 A-law bytes."""
    pcm = np.asarray(samples, dtype=np.int16)
    return _ALAW_ENCODE[pcm.view(np.uint16)].tobytes()


def alaw_to_pcm16(data: bytes) -> Pcm16:
    """Decode G.711 A-law bytes to int16 samples."""
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(samples: npt.ArrayLike) -> bytes:
    """Encode float samples as G.711 A-law bytes."""
    return pcm16_to_alaw(float_to_pcm16(samples))


def alaw_decode(data: bytes) -> Samples:
    """Decode G.711 A-law bytes to float32 samples."""
    return _ALAW_DECODE_FLOAT[np.frombuffer(data, dtype=np.uint8)]
