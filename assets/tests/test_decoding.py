import shutil
import struct
import tracemalloc
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from assets.decoding import (
    ACCEPTED_FORMATS,
    MAX_FILE_BYTES,
    AudioRejected,
    decode_to_mono16k,
    sniff,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "audio"
REFERENCE = FIXTURES / "speech_16k_mono_s16.wav"

# Minimum peak normalised cross-correlation against the 16 kHz reference, set a little
# under what each file measures: ≥0.9999 for PCM/float/FLAC/AIFF, 0.994 for 8-bit
# μ-law, 0.984–0.999 for the lossy codecs.
LOSSLESS = 0.999
MULAW = 0.99
LOSSY = 0.95

# (file, format, content type, rate, channels, seconds, min correlation). Seconds are
# the README's ffprobe figures, except MP3: ffprobe's 9.978776 s counts the encoder's
# 1,568 samples of delay and padding, which a gapless decoder (libsndfile's mpg123, and
# FFmpeg alike) drops, leaving the 9.907664 s of the source sentence.
GOOD_FIXTURES = [
    ("speech_16k_mono_s16.wav", "wav", "audio/wav", 16000, 1, 9.907688, LOSSLESS),
    ("speech_48k_float32.wav", "wav", "audio/wav", 48000, 1, 9.907667, LOSSLESS),
    ("speech_8k_mulaw.wav", "wav", "audio/wav", 8000, 1, 9.907625, MULAW),
    ("speech_44k1_stereo.flac", "flac", "audio/flac", 44100, 2, 9.907664, LOSSLESS),
    ("speech_32k_mono.aiff", "aiff", "audio/aiff", 32000, 1, 9.907688, LOSSLESS),
    ("speech_48k_stereo.ogg", "ogg_vorbis", "audio/ogg", 48000, 2, 9.907667, LOSSY),
    ("speech_48k_mono.opus", "opus", "audio/opus", 48000, 1, 9.914167, LOSSY),
    ("speech_22k_mono.mp3", "mp3", "audio/mpeg", 22050, 1, 9.907664, LOSSY),
    ("speech_16k_mono.m4a", "m4a", "audio/mp4", 16000, 1, 9.908000, LOSSY),
]

# Real magic numbers, each followed in the fuzz test by random bytes.
MAGIC_PREFIXES = {
    "riff_wave": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    "rf64": b"RF64\xff\xff\xff\xffWAVEds64",
    "aiff": b"FORM\x00\x00\x10\x00AIFFCOMM",
    "aifc": b"FORM\x00\x00\x10\x00AIFC",
    "flac": b"fLaC",
    "ogg_opus": b"OggS\x00\x02" + bytes(20) + b"\x01\x13OpusHead",
    "ogg_vorbis": b"OggS\x00\x02" + bytes(20) + b"\x01\x1e\x01vorbis",
    "id3": b"ID3\x04\x00\x00\x00\x00\x00\x23",
    "mpeg_frame": b"\xff\xfb\x90\x00",
    "mp4": b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00M4A isomiso2",
}


def reference_samples() -> npt.NDArray[np.float32]:
    samples, rate = sf.read(REFERENCE, dtype="float32")
    assert rate == 16000
    return samples


def peak_correlation(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    size = 1 << (len(a) + len(b) - 1).bit_length()
    spectrum = np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size))
    correlation = np.fft.irfft(spectrum, size)
    return float(np.abs(correlation).max() / (np.linalg.norm(a) * np.linalg.norm(b)))


def rejection(path: Path, max_seconds: float = 60) -> AudioRejected:
    with pytest.raises(AudioRejected) as caught:
        decode_to_mono16k(path, max_seconds=max_seconds)
    return caught.value


def id3_tag(padding: int) -> bytes:
    syncsafe = bytes((padding >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + bytes(padding)


@pytest.mark.parametrize(
    ("name", "fmt", "content_type", "rate", "channels", "seconds"),
    [row[:-1] for row in GOOD_FIXTURES],
)
def test_good_fixture_decodes_to_16k_mono_with_its_true_duration(
    name: str, fmt: str, content_type: str, rate: int, channels: int, seconds: float
) -> None:
    decoded = decode_to_mono16k(FIXTURES / name, max_seconds=60)

    assert decoded.format.name == fmt
    assert decoded.format.content_type == content_type
    assert decoded.original_sample_rate == rate
    assert decoded.original_channels == channels
    assert abs(decoded.duration_ms - seconds * 1000) <= 50
    assert decoded.samples.dtype == np.float32
    assert decoded.samples.ndim == 1
    # 16 kHz: the output holds as many samples as the decoded duration implies.
    assert abs(len(decoded.samples) - decoded.duration_ms * 16) <= 16


@pytest.mark.parametrize(
    ("name", "min_corr"), [(row[0], row[-1]) for row in GOOD_FIXTURES]
)
def test_good_fixture_sounds_like_the_reference_recording(
    name: str, min_corr: float
) -> None:
    decoded = decode_to_mono16k(FIXTURES / name, max_seconds=60)

    assert peak_correlation(decoded.samples, reference_samples()) > min_corr


@pytest.mark.parametrize(("name", "fmt"), [(row[0], row[1]) for row in GOOD_FIXTURES])
def test_sniff_names_the_format_from_the_first_4_kib(name: str, fmt: str) -> None:
    sniffed = sniff((FIXTURES / name).read_bytes()[:4096])

    assert sniffed is not None
    assert sniffed.name == fmt


@pytest.mark.parametrize(
    ("source", "misleading_name", "fmt"),
    [
        ("speech_44k1_stereo.flac", "x.wav", "flac"),
        ("speech_22k_mono.mp3", "x.flac", "mp3"),
        ("speech_16k_mono.m4a", "x.mp3", "m4a"),
        ("speech_48k_mono.opus", "x.ogg", "opus"),
    ],
)
def test_format_comes_from_the_bytes_not_the_file_name(
    tmp_path: Path, source: str, misleading_name: str, fmt: str
) -> None:
    path = tmp_path / misleading_name
    shutil.copy(FIXTURES / source, path)

    decoded = decode_to_mono16k(path, max_seconds=60)

    assert decoded.format.name == fmt
    assert abs(decoded.duration_ms - 9908) <= 50


@pytest.mark.parametrize("name", ["bad_random_bytes.wav", "bad_text.mp3"])
def test_bytes_that_are_not_audio_are_an_unsupported_format(name: str) -> None:
    rejected = rejection(FIXTURES / name)

    assert rejected.code == "unsupported_format"
    assert rejected.http_status == 415
    assert ACCEPTED_FORMATS[0] in rejected.message
    assert sniff((FIXTURES / name).read_bytes()[:4096]) is None


def test_header_promising_4_gib_is_empty_audio_without_a_big_allocation() -> None:
    tracemalloc.start()
    try:
        rejected = rejection(FIXTURES / "bad_lying_header.wav")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert rejected.code == "empty_audio"
    assert rejected.http_status == 400
    assert "0.5 ms" in rejected.message
    assert peak < 8 * 2**20


def test_header_with_zero_channels_is_an_invalid_header() -> None:
    rejected = rejection(FIXTURES / "bad_zero_channels.wav")

    assert rejected.code == "invalid_header"
    assert rejected.http_status == 400
    assert "zero channels" in rejected.message


def test_aiff_header_with_zero_channels_is_an_invalid_header(tmp_path: Path) -> None:
    data = bytearray((FIXTURES / "speech_32k_mono.aiff").read_bytes())
    assert data[12:16] == b"COMM"
    struct.pack_into(">H", data, 20, 0)
    path = tmp_path / "silent.aiff"
    path.write_bytes(data)

    rejected = rejection(path)

    assert rejected.code == "invalid_header"
    assert "AIFF header declares zero channels" in rejected.message


def test_truncated_mp3_reports_what_decoded_not_what_its_header_promised() -> None:
    decoded = decode_to_mono16k(FIXTURES / "bad_truncated.mp3", max_seconds=60)

    assert decoded.format.name == "mp3"
    assert 2200 <= decoded.duration_ms <= 2700
    assert abs(len(decoded.samples) - decoded.duration_ms * 16) <= 16


def test_audio_past_the_limit_is_too_long_and_just_inside_it_is_accepted() -> None:
    path = FIXTURES / "speech_44k1_stereo.flac"

    rejected = rejection(path, max_seconds=9.9)
    decoded = decode_to_mono16k(path, max_seconds=9.95)

    assert rejected.code == "too_long"
    assert rejected.http_status == 400
    assert "9.9 s" in rejected.message
    assert decoded.duration_ms == 9908


def test_file_over_32_mib_is_too_large_before_any_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.wav"
    with path.open("wb") as file:
        file.truncate(MAX_FILE_BYTES + 1)

    rejected = rejection(path)

    assert rejected.code == "too_large"
    assert rejected.http_status == 413


def test_channels_are_averaged_into_mono(tmp_path: Path) -> None:
    left = reference_samples()
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), 16000, "FLOAT")

    decoded = decode_to_mono16k(path, max_seconds=60)

    np.testing.assert_allclose(decoded.samples, left / 2, atol=1e-7)


def test_float_wav_with_nan_is_corrupt(tmp_path: Path) -> None:
    samples = reference_samples()
    samples[1000] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, samples, 16000, "FLOAT")

    rejected = rejection(path)

    assert rejected.code == "corrupt_audio"


def test_implausible_sample_rate_is_an_invalid_header(tmp_path: Path) -> None:
    data = bytearray(REFERENCE.read_bytes())
    struct.pack_into("<I", data, 24, 2_000_000_000)
    path = tmp_path / "fast.wav"
    path.write_bytes(data)

    rejected = rejection(path)

    assert rejected.code == "invalid_header"
    assert "2000000000 Hz" in rejected.message


def test_alac_in_m4a_decodes_losslessly(tmp_path: Path) -> None:
    reference = reference_samples()
    pcm = np.round(reference * 32768).astype(np.int16)
    path = tmp_path / "alac.m4a"
    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("alac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            pcm.reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)

    decoded = decode_to_mono16k(path, max_seconds=60)

    assert decoded.format.name == "m4a"
    np.testing.assert_allclose(decoded.samples, reference, atol=1e-6)


@pytest.mark.parametrize(
    ("source", "fmt"),
    [("speech_22k_mono.mp3", "mp3"), ("speech_44k1_stereo.flac", "flac")],
)
def test_id3_tag_longer_than_the_sniff_window_is_looked_past(
    tmp_path: Path, source: str, fmt: str
) -> None:
    path = tmp_path / "tagged"
    path.write_bytes(id3_tag(10_000) + (FIXTURES / source).read_bytes())

    decoded = decode_to_mono16k(path, max_seconds=60)

    assert decoded.format.name == fmt
    assert abs(decoded.duration_ms - 9908) <= 50


def test_id3_tag_in_front_of_a_wav_is_not_accepted(tmp_path: Path) -> None:
    path = tmp_path / "tagged.wav"
    path.write_bytes(id3_tag(100) + REFERENCE.read_bytes())

    assert rejection(path).code == "unsupported_format"


@pytest.mark.parametrize("magic", MAGIC_PREFIXES.values(), ids=MAGIC_PREFIXES.keys())
def test_random_bytes_behind_real_magic_numbers_are_rejected_cleanly(
    tmp_path: Path, magic: bytes
) -> None:
    rng = np.random.default_rng(list(magic))
    path = tmp_path / "fuzz"
    for length in (0, 1, 7, 64, 1000, 5000, 40000):
        for _ in range(3):
            path.write_bytes(magic + rng.bytes(length))

            rejected = rejection(path)

            assert rejected.code in {
                "unsupported_format",
                "corrupt_audio",
                "empty_audio",
                "invalid_header",
            }
            assert rejected.http_status in {400, 415}
            assert rejected.message


@pytest.mark.parametrize("name", [row[0] for row in GOOD_FIXTURES])
def test_damaged_real_files_decode_or_are_rejected_cleanly(
    tmp_path: Path, name: str
) -> None:
    original = np.frombuffer((FIXTURES / name).read_bytes(), dtype=np.uint8)
    rng = np.random.default_rng(list(name.encode()))
    path = tmp_path / "damaged"
    for attempt in range(12):
        damaged = original.copy()
        if attempt % 2:
            damaged = damaged[: rng.integers(0, min(len(damaged), 20_000))]
        else:
            spots = rng.integers(0, min(len(damaged), 4096), 8)
            damaged[spots] = rng.integers(0, 256, 8)
        path.write_bytes(damaged.tobytes())

        try:
            decoded = decode_to_mono16k(path, max_seconds=60)
        except AudioRejected as rejected:
            assert rejected.http_status in {400, 415}
        else:
            assert decoded.samples.dtype == np.float32
            assert np.isfinite(decoded.samples).all()
            assert abs(len(decoded.samples) - decoded.duration_ms * 16) <= 16
