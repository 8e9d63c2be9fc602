from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audio.codecs import float_to_pcm16
from audio.wav import WavWriter, repair_wav_header

HEADER_BYTES = 44


def noise(seconds: float, rate: int = 16_000) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.uniform(-1.1, 1.1, int(rate * seconds)).astype(np.float32)


def write_in_frames(writer: WavWriter, signal: np.ndarray, frame: int = 320) -> None:
    for start in range(0, len(signal), frame):
        writer.write(signal[start : start + frame])


def read_int16(path: Path) -> tuple[np.ndarray, int]:
    samples, rate = soundfile.read(path, dtype="int16")
    return samples, rate


def test_recording_reads_back_sample_for_sample(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    signal = noise(2.51)

    with WavWriter(path) as writer:
        write_in_frames(writer, signal)
        assert writer.samples_written == len(signal)

    info = soundfile.info(path)
    assert (info.channels, info.samplerate, info.subtype) == (1, 16_000, "PCM_16")
    samples, _ = read_int16(path)
    np.testing.assert_array_equal(samples, float_to_pcm16(signal))


def test_recording_keeps_its_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "narrowband.wav"
    signal = noise(0.3, rate=8_000)

    with WavWriter(path, sample_rate=8_000) as writer:
        writer.write(signal)

    samples, rate = read_int16(path)
    assert rate == 8_000
    np.testing.assert_array_equal(samples, float_to_pcm16(signal))


def test_empty_recording_is_a_valid_wav(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"

    WavWriter(path).close()

    samples, rate = read_int16(path)
    assert (len(samples), rate) == (0, 16_000)
    assert path.stat().st_size == HEADER_BYTES


def test_samples_reach_the_file_about_once_a_second(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with WavWriter(path) as writer:
        assert path.stat().st_size == HEADER_BYTES
        write_in_frames(writer, noise(0.98))
        assert path.stat().st_size == HEADER_BYTES
        write_in_frames(writer, noise(0.04))
        assert path.stat().st_size == HEADER_BYTES + 16_000 * 2


@pytest.mark.parametrize("chunk_seconds", [0.02, 0.7, 3.3])
def test_unwritten_audio_in_memory_never_exceeds_one_second(
    tmp_path: Path, chunk_seconds: float
) -> None:
    path = tmp_path / "call.wav"
    chunk = noise(chunk_seconds)

    with WavWriter(path) as writer:
        for _ in range(int(10 / chunk_seconds)):
            writer.write(chunk)
            on_disk = (path.stat().st_size - HEADER_BYTES) // 2
            assert 0 <= writer.samples_written - on_disk < 16_000

    samples, _ = read_int16(path)
    assert len(samples) == writer.samples_written


def test_repair_finalises_a_recording_whose_writer_died(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    crashed = tmp_path / "crashed.wav"
    signal = noise(2.5)
    with WavWriter(path) as writer:
        write_in_frames(writer, signal)
        writer.flush()
        # The file as it stands now is what a killed process leaves behind.
        shutil.copy(path, crashed)

    assert repair_wav_header(crashed) == len(signal)

    samples, rate = read_int16(crashed)
    assert rate == 16_000
    np.testing.assert_array_equal(samples, float_to_pcm16(signal))
    assert crashed.read_bytes() == path.read_bytes()


def test_repair_finalises_a_recording_that_died_before_its_first_second(
    tmp_path: Path,
) -> None:
    path = tmp_path / "call.wav"
    crashed = tmp_path / "crashed.wav"
    with WavWriter(path) as writer:
        writer.write(noise(0.5))
        shutil.copy(path, crashed)

    assert repair_wav_header(crashed) == 0

    samples, rate = read_int16(crashed)
    assert (len(samples), rate) == (0, 16_000)


def test_repair_drops_a_torn_final_sample(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    signal = noise(0.5)
    with WavWriter(path) as writer:
        writer.write(signal)
    with path.open("ab") as file:
        file.write(b"\x7f")

    assert repair_wav_header(path) == len(signal)

    samples, _ = read_int16(path)
    np.testing.assert_array_equal(samples, float_to_pcm16(signal))


def test_repair_refuses_a_file_that_is_not_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_bytes(b"ID3" + bytes(100))

    with pytest.raises(ValueError):
        repair_wav_header(path)
