from __future__ import annotations

import numpy as np
import pytest

from audio.codecs import (
    InvalidPcm,
    decode_f32le,
    encode_f32le,
    float_to_pcm16,
    mulaw_decode,
    mulaw_encode,
    mulaw_to_pcm16,
    pcm16_to_float,
    pcm16_to_mulaw,
)

ALL_PCM16 = np.arange(-32768, 32768).astype(np.int16)


def itu_ulaw_compress(sample: int) -> int:
    """Encode one sample as ITU-T G.191's reference ulaw_compress() does."""
    absno = ((~sample if sample < 0 else sample) >> 2) + 33
    absno = min(absno, 0x1FFF)
    segno = 1
    i = absno >> 6
    while i:
        segno += 1
        i >>= 1
    high_nibble = 8 - segno
    low_nibble = 15 - ((absno >> segno) & 0xF)
    code = (high_nibble << 4) | low_nibble
    return code | 0x80 if sample >= 0 else code


def itu_ulaw_expand(code: int) -> int:
    """Decode one μ-law byte as ITU-T G.191's reference ulaw_expand() does."""
    sign = -1 if code < 0x80 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 7
    step = 4 << (exponent + 1)
    return sign * ((0x80 << exponent) + step * (mantissa & 0xF) + step // 2 - 4 * 33)


def test_f32le_round_trips_exact_sample_values() -> None:
    samples = np.array([0.0, 0.25, -0.5, 1.0, -1.0, 1e-7], dtype=np.float32)

    data = encode_f32le(samples)

    assert data[:8] == bytes.fromhex("00000000 0000803e")
    decoded = decode_f32le(data)
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, samples)


def test_decoded_f32le_is_clipped_and_writable() -> None:
    decoded = decode_f32le(encode_f32le([1.5, -7.0, 0.5]))

    np.testing.assert_array_equal(decoded, [1.0, -1.0, 0.5])
    decoded *= 0.5
    np.testing.assert_array_equal(decoded, [0.5, -0.5, 0.25])


@pytest.mark.parametrize(
    "data",
    [b"\x00\x00\x80", encode_f32le([0.1, np.nan]), encode_f32le([np.inf, 0.0])],
    ids=["partial-sample", "nan", "infinity"],
)
def test_malformed_f32le_is_rejected_as_invalid_pcm(data: bytes) -> None:
    with pytest.raises(InvalidPcm) as caught:
        decode_f32le(data)
    assert caught.value.code == "invalid_pcm_frame"


def test_float_to_pcm16_clips_scales_and_rounds() -> None:
    samples = np.array([1.0, -1.0, 0.5, 0.0, 2.0, -2.0, 0.4 / 32767, 0.6 / 32767])

    np.testing.assert_array_equal(
        float_to_pcm16(samples), [32767, -32767, 16384, 0, 32767, -32767, 0, 1]
    )
    assert float_to_pcm16(samples).dtype == np.int16


def test_pcm16_to_float_accepts_arrays_and_little_endian_bytes() -> None:
    expected = np.array([-1.0, 0.5, 32767 / 32768], dtype=np.float32)

    from_bytes = pcm16_to_float(b"\x00\x80\x00\x40\xff\x7f")
    from_array = pcm16_to_float(np.array([-32768, 16384, 32767], dtype=np.int16))

    assert from_bytes.dtype == from_array.dtype == np.float32
    np.testing.assert_array_equal(from_bytes, expected)
    np.testing.assert_array_equal(from_array, expected)


def test_pcm16_bytes_of_odd_length_are_rejected() -> None:
    with pytest.raises(InvalidPcm):
        pcm16_to_float(b"\x00\x80\x00")


def test_mulaw_encoding_matches_the_itu_reference_for_every_int16() -> None:
    expected = bytes(itu_ulaw_compress(int(sample)) for sample in ALL_PCM16)

    assert pcm16_to_mulaw(ALL_PCM16) == expected


def test_mulaw_decoding_matches_the_itu_reference_for_every_byte() -> None:
    expected = [itu_ulaw_expand(code) for code in range(256)]

    decoded = mulaw_to_pcm16(bytes(range(256)))

    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, expected)


def test_mulaw_maps_silence_and_full_scale_to_the_standard_code_words() -> None:
    pcm = np.array([0, -1, 32767, -32768, 8031, -8031], dtype=np.int16)

    assert pcm16_to_mulaw(pcm) == bytes([0xFF, 0x7F, 0x80, 0x00, 0xA0, 0x20])
    np.testing.assert_array_equal(
        mulaw_to_pcm16(bytes([0xFF, 0x7F, 0x80, 0x00])), [0, 0, 32124, -32124]
    )


def test_mulaw_round_trip_error_is_within_half_a_quantisation_step() -> None:
    codes = np.frombuffer(pcm16_to_mulaw(ALL_PCM16), dtype=np.uint8)
    decoded = mulaw_to_pcm16(codes.tobytes()).astype(np.int32)
    step = 8 << ((~codes >> 4) & 7).astype(np.int32)
    error = np.abs(decoded - ALL_PCM16)
    unclipped = np.abs(ALL_PCM16.astype(np.int32)) <= 32635

    assert (error[unclipped] <= step[unclipped] // 2).all()
    np.testing.assert_array_equal(
        np.abs(decoded[~unclipped]), np.full((~unclipped).sum(), 32124)
    )


def test_mulaw_float_round_trip_preserves_a_sine() -> None:
    t = np.arange(1600) / 8000
    sine = (0.6 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)

    data = mulaw_encode(sine)
    decoded = mulaw_decode(data)

    assert len(data) == 1600
    assert decoded.dtype == np.float32
    # The coarsest step used by a 0.6 peak is 1024 / 32768 ≈ 0.031.
    assert np.abs(decoded - sine).max() < 0.016
    noise = np.sum((decoded - sine) ** 2)
    assert 10 * np.log10(np.sum(sine**2) / noise) > 35
    assert mulaw_encode(np.zeros(4, dtype=np.float32)) == b"\xff" * 4
