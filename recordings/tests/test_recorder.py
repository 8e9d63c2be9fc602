"""The recorder on its own: aligned frames, bounded memory, batched writes."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audio.codecs import float_to_pcm16
from recordings.recorder import STAGGER_FRAMES, CallRecorder, wait_for_spool_writes
from recordings.tests.conftest import tone


def test_each_tick_appends_one_frame_to_every_file_silence_included(
    tmp_path: Path,
) -> None:
    recorder = CallRecorder(tmp_path / "call")
    heard = tone(0.5, amplitude=0.7)
    said = np.zeros_like(heard)
    said[1600:] = tone(0.5, hz=660, amplitude=0.7)[:-1600]
    for start in range(0, len(heard), 320):
        recorder.on_media(said[start : start + 320], heard[start : start + 320])
    recorder.close().result()
    inbound, rate = soundfile.read(tmp_path / "call" / "inbound.wav", dtype="int16")
    outbound, _ = soundfile.read(tmp_path / "call" / "outbound.wav", dtype="int16")
    mixed, _ = soundfile.read(tmp_path / "call" / "mixed.wav", dtype="int16")
    assert rate == 16000 and len(inbound) == len(outbound) == len(mixed) == 8000
    np.testing.assert_array_equal(inbound, float_to_pcm16(said))
    np.testing.assert_array_equal(outbound, float_to_pcm16(heard))
    np.testing.assert_array_equal(mixed, float_to_pcm16(np.clip(said + heard, -1, 1)))


def test_ten_minutes_of_frames_do_not_grow_memory(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "call")
    frame = tone(0.02)
    # Only what the recorder's code allocates (other threads run in the suite).
    ours = [
        tracemalloc.Filter(True, "*/recordings/recorder.py"),
        tracemalloc.Filter(True, "*/audio/*.py"),
    ]

    def one_second() -> None:
        for _ in range(50):
            recorder.on_media(frame, frame)
        wait_for_spool_writes()  # the disk keeps up with real time

    tracemalloc.start()
    try:
        for _ in range(10):  # warm up
            one_second()
        before = tracemalloc.take_snapshot().filter_traces(ours)
        for _ in range(600):  # ten minutes
            one_second()
        after = tracemalloc.take_snapshot().filter_traces(ours)
    finally:
        tracemalloc.stop()
    recorder.close().result()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 16 * 1024, grown
    assert (tmp_path / "call" / "mixed.wav").stat().st_size == 44 + 2 * 610 * 16000


@pytest.mark.usefixtures("unstaggered")
def test_the_files_grow_a_second_at_a_time_not_a_frame_at_a_time(
    tmp_path: Path,
) -> None:
    recorder = CallRecorder(tmp_path / "call")
    frame = tone(0.02)
    path = tmp_path / "call" / "outbound.wav"
    sizes = []
    for _ in range(250):  # five seconds
        recorder.on_media(frame, frame)
        wait_for_spool_writes()
        sizes.append(path.stat().st_size)
    growth = [b - a for a, b in itertools.pairwise(sizes) if b != a]
    # One write a second, handed to the writer thread by the frame after it filled.
    assert growth == [32000] * 4
    recorder.close().result()
    assert path.stat().st_size == 44 + 5 * 32000  # the fifth second, by close()


def test_recorders_made_together_hand_off_their_seconds_on_different_ticks(
    tmp_path: Path,
) -> None:
    recorders = [CallRecorder(tmp_path / f"call{i}") for i in range(STAGGER_FRAMES)]
    paths = [tmp_path / f"call{i}" / "outbound.wav" for i in range(STAGGER_FRAMES)]
    heard = tone(1.2, amplitude=0.5)
    first_write: dict[int, int] = {}
    for tick in range(60):
        frame = heard[tick * 320 : (tick + 1) * 320]
        for recorder in recorders:
            recorder.on_media(frame, frame)
        wait_for_spool_writes()
        for i, path in enumerate(paths):
            if i not in first_write and path.stat().st_size > 44:
                first_write[i] = tick
    # Every recorder wrote its first block, each on a tick of its own.
    assert sorted(first_write.values()) == list(range(1, STAGGER_FRAMES + 1))
    for recorder in recorders:
        recorder.close().result()
    for path in paths:  # and nothing is lost or reordered by the shorter first block
        outbound, _ = soundfile.read(path, dtype="int16")
        np.testing.assert_array_equal(outbound, float_to_pcm16(heard))
