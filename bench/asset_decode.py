"""Measure how fast uploaded assets decode to 16 kHz mono: 60 s files, one core.

Run: .venv/bin/python bench/asset_decode.py   (goal: at least 100x real time)
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

from assets.decoding import decode_to_mono16k

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
SECONDS = 60
RATE = 44_100
RUNS = 7


def speech_stereo_44k1() -> np.ndarray:
    """Return 60 s of the speech fixture, repeated, as 44.1 kHz stereo."""
    speech, rate = sf.read(FIXTURES / "speech_16k_mono_s16.wav", dtype="float32")
    speech = soxr.resample(speech, rate, RATE)
    mono = np.resize(speech, SECONDS * RATE)
    # A slightly different right channel, so the downmix does real work.
    return np.stack([mono, 0.8 * mono], axis=1)


def write_m4a(path: Path, audio: np.ndarray) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=RATE, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio.T), format="fltp", layout="stereo"
        )
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def build_files(directory: Path) -> dict[str, Path]:
    audio = speech_stereo_44k1()
    writers: dict[str, Callable[[Path], None]] = {
        "mp3": lambda p: sf.write(p, audio, RATE, "MPEG_LAYER_III", format="MP3"),
        "flac": lambda p: sf.write(p, audio, RATE, "PCM_16", format="FLAC"),
        "wav": lambda p: sf.write(p, audio, RATE, "PCM_16", format="WAV"),
        "m4a": lambda p: write_m4a(p, audio),
    }
    files = {}
    for suffix, write in writers.items():
        path = directory / f"speech_60s_44k1_stereo.{suffix}"
        write(path)
        files[suffix] = path
    return files


def main() -> None:
    # One core, as a decode worker would get; soxr and numpy stay single-threaded.
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        files = build_files(Path(tmp))
        print(
            f"{SECONDS} s of speech, 44.1 kHz stereo -> 16 kHz mono, median of {RUNS}"
        )
        print(f"{'file':<28} {'size':>8} {'ms/file':>9} {'x real time':>12}")
        for path in files.values():
            decode_to_mono16k(path, max_seconds=120)  # warm caches and lazy imports
            timings = []
            for _ in range(RUNS):
                start = time.perf_counter()
                decode_to_mono16k(path, max_seconds=120)
                timings.append(time.perf_counter() - start)
            ms = statistics.median(timings) * 1000
            size = f"{path.stat().st_size / 2**20:.1f} MiB"
            print(f"{path.name:<28} {size:>8} {ms:>9.1f} {SECONDS * 1000 / ms:>11.0f}x")


if __name__ == "__main__":
    main()
