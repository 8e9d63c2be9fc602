from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
import pytest

from audio.codecs import (
    InvalidPcm,
    alaw_decode,
    alaw_encode,
    alaw_to_pcm16,
    decode_f32le,
    encode_f32le,
    float_to_pcm16,
    mulaw_decode,
    mulaw_encode,
    mulaw_to_pcm16,
    pcm16_to_alaw,
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


def itu_alaw_compress(sample: int) -> int:
    """Encode one sample as ITU-T G.191's reference alaw_compress() does."""
    ix = (~sample if sample < 0 else sample) >> 4
    if ix > 15:
        exponent = 1
        while ix > 16 + 15:
            ix >>= 1
            exponent += 1
        ix -= 16
        ix += exponent << 4
    if sample >= 0:
        ix |= 0x80
    return ix ^ 0x55


def itu_alaw_expand(code: int) -> int:
    """Decode one A-law byte as ITU-T G.191's reference alaw_expand() does."""
    ix = (code ^ 0x55) & 0x7F
    exponent = ix >> 4
    mantissa = ix & 0xF
    if exponent > 0:
        mantissa += 16
    mantissa = (mantissa << 4) + 8
    if exponent > 1:
        mantissa <<= exponent - 1
    return mantissa if code > 127 else -mantissa


@pytest.fixture(scope="module")
def audioop() -> ModuleType:
    """Return Python's C implementation of G.711 (deprecated in 3.11, gone in 3.13)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


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


def test_mulaw_decoding_matches_audioop_for_every_byte(audioop: ModuleType) -> None:
    expected = np.frombuffer(audioop.ulaw2lin(bytes(range(256)), 2), dtype="<i2")

    np.testing.assert_array_equal(mulaw_to_pcm16(bytes(range(256))), expected)


def test_mulaw_encoding_differs_from_audioop_only_by_its_negative_thresholds(
    audioop: ModuleType,
) -> None:
    # audioop follows Sun's g711.c, which negates negative samples where G.191 takes
    # their one's complement: its negative decision thresholds sit 4 lower.
    reference = audioop.lin2ulaw(ALL_PCM16.astype("<i2").tobytes(), 2)
    shifted = np.where(
        ALL_PCM16 < 0, np.maximum(ALL_PCM16.astype(np.int32) - 4, -32768), ALL_PCM16
    )

    ours = pcm16_to_mulaw(ALL_PCM16)
    assert ours[32768:] == reference[32768:]
    assert pcm16_to_mulaw(shifted.astype(np.int16)) == reference
    assert sum(a != b for a, b in zip(ours, reference, strict=True)) == 508


def test_alaw_encoding_matches_the_itu_reference_for_every_int16() -> None:
    expected = bytes(itu_alaw_compress(int(sample)) for sample in ALL_PCM16)

    assert pcm16_to_alaw(ALL_PCM16) == expected


def test_alaw_decoding_matches_the_itu_reference_for_every_byte() -> None:
    expected = [itu_alaw_expand(code) for code in range(256)]

    np.testing.assert_array_equal(alaw_to_pcm16(bytes(range(256))), expected)


def test_alaw_encoding_matches_audioop_for_every_int16(audioop: ModuleType) -> None:
    expected = audioop.lin2alaw(ALL_PCM16.astype("<i2").tobytes(), 2)

    assert pcm16_to_alaw(ALL_PCM16) == expected


def test_alaw_decoding_matches_audioop_for_every_byte(audioop: ModuleType) -> None:
    expected = np.frombuffer(audioop.alaw2lin(bytes(range(256)), 2), dtype="<i2")

    decoded = alaw_to_pcm16(bytes(range(256)))

    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, expected)


def test_alaw_maps_silence_and_full_scale_to_the_standard_code_words() -> None:
    pcm = np.array([0, -1, 15, -16, 32767, -32768], dtype=np.int16)

    # Even bits are inverted on the wire, so silence is 0xD5 / 0x55, not 0x80 / 0x00.
    assert pcm16_to_alaw(pcm) == bytes([0xD5, 0x55, 0xD5, 0x55, 0xAA, 0x2A])
    np.testing.assert_array_equal(
        alaw_to_pcm16(bytes([0xD5, 0x55, 0xAA, 0x2A])), [8, -8, 32256, -32256]
    )


def test_every_alaw_code_word_survives_a_decode_encode_round_trip() -> None:
    codes = bytes(range(256))

    assert pcm16_to_alaw(alaw_to_pcm16(codes)) == codes


def test_alaw_round_trip_error_is_within_half_a_quantisation_step() -> None:
    codes = np.frombuffer(pcm16_to_alaw(ALL_PCM16), dtype=np.uint8)
    decoded = alaw_to_pcm16(codes.tobytes()).astype(np.int32)
    segment = ((codes ^ 0x55) >> 4) & 7
    step = 16 << np.maximum(segment.astype(np.int32) - 1, 0)

    # Unlike μ-law, A-law's top segment reaches full scale: nothing clips.
    assert (np.abs(decoded - ALL_PCM16) <= step // 2).all()
    assert np.abs(decoded).max() == 32256


def test_alaw_float_round_trip_preserves_a_sine() -> None:
    t = np.arange(1600) / 8000
    sine = (0.6 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)

    data = alaw_encode(sine)
    decoded = alaw_decode(data)

    assert len(data) == 1600
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, alaw_to_pcm16(data) / np.float32(32768))
    # The coarsest step used by a 0.6 peak is 1024 / 32768 ≈ 0.031.
    assert np.abs(decoded - sine).max() < 0.016
    noise = np.sum((decoded - sine) ** 2)
    assert 10 * np.log10(np.sum(sine**2) / noise) > 35
    assert alaw_encode(np.zeros(4, dtype=np.float32)) == b"\xd5" * 4
