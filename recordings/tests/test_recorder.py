"""The recorders on their own: aligned frames, shared seconds, bounded memory."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile

from audio.codecs import float_to_pcm16
from recordings import spool
from recordings.recorder import (
    BLOCK_FRAMES,
    FIRST_ROWS,
    CallRecorder,
    RecordingBank,
    wait_for_spool_writes,
)
from recordings.tests.conftest import tone

FRAME = 320


def frames(signal: np.ndarray) -> list[np.ndarray]:
    return [signal[at : at + FRAME] for at in range(0, len(signal), FRAME)]


def channels(recorder: CallRecorder) -> tuple[np.ndarray, np.ndarray]:
    """The two directions of a closed recorder's spool file, as 16-bit samples."""
    both, rate = soundfile.read(
        spool.audio_path(recorder.directory), dtype="int16", always_2d=True
    )
    assert rate == 16000 and both.shape[1] == 2
    return both[:, 0], both[:, 1]


def test_each_tick_appends_one_frame_silence_included_and_the_split_gives_three_tracks(
    tmp_path: Path,
) -> None:
    bank = RecordingBank()
    recorder = bank.open(tmp_path / "call")
    heard = tone(0.5, amplitude=0.7)
    said = np.zeros_like(heard)
    said[1600:] = tone(0.5, hz=660, amplitude=0.7)[:-1600]
    for said_frame, heard_frame in zip(frames(said), frames(heard), strict=True):
        recorder.on_media(said_frame, heard_frame)
        bank.frame_done()
    recorder.close().result()
    inbound, outbound = channels(recorder)
    np.testing.assert_array_equal(inbound, float_to_pcm16(said))
    np.testing.assert_array_equal(outbound, float_to_pcm16(heard))

    assert spool.split(recorder.directory)
    tracks = {
        kind: soundfile.read(
            spool.wav_path(recorder.directory, kind), dtype="int16", always_2d=False
        )
        for kind in spool.KINDS
    }
    assert {rate for _, rate in tracks.values()} == {16000}
    np.testing.assert_array_equal(tracks["inbound"][0], inbound)
    np.testing.assert_array_equal(tracks["outbound"][0], outbound)
    # The mix is the directions' sum, clipped to 16 bits: within one step of rounding
    # the float mix, and clipped where the two tones together exceed full scale.
    mixed = tracks["mixed"][0]
    expected = np.clip(inbound.astype(np.int32) + outbound, -32767, 32767)
    np.testing.assert_array_equal(mixed, expected)
    float_mix = float_to_pcm16(np.clip(said + heard, -1, 1)).astype(np.int32)
    assert np.abs(mixed - float_mix).max() <= 1
    assert mixed.max() == 32767 and mixed.min() == -32767


def test_calls_share_seconds_but_each_file_holds_exactly_its_own_frames(
    tmp_path: Path,
) -> None:
    """Calls start and end at any frame; a row freed mid-second is taken by another
    call in the same second without either file getting the other's audio."""
    bank = RecordingBank()
    signals = [tone(3.0, hz=200 + 50 * i, amplitude=0.5) for i in range(4)]
    # (call, first frame, frames recorded): overlapping, ending and starting mid-second.
    plan = [(0, 0, 150), (1, 10, 37), (2, 47, 80), (3, 60, 70)]
    recorders: dict[int, CallRecorder] = {}
    sent: dict[int, int] = {}
    for frame in range(160):
        for call, first, count in plan:
            if frame == first:
                recorders[call] = bank.open(tmp_path / f"call{call}")
                sent[call] = 0
            if call in recorders and sent[call] < count:
                at = sent[call] * FRAME
                piece = signals[call][at : at + FRAME]
                recorders[call].on_media(piece, -piece)
                sent[call] += 1
            elif call in recorders and sent[call] == count:
                recorders[call].close()
                sent[call] += 1  # closed
        bank.frame_done()
    # Call 1 ended at frame 47, where call 2 started: call 2 took its row.
    assert recorders[2].row == recorders[1].row
    for recorder in recorders.values():
        recorder.close().result()
    for call, _, count in plan:
        inbound, outbound = channels(recorders[call])
        expected = float_to_pcm16(signals[call][: count * FRAME])
        np.testing.assert_array_equal(inbound, expected)
        np.testing.assert_array_equal(outbound, -expected)


def test_a_tick_a_call_missed_inside_its_second_is_written_as_silence(
    tmp_path: Path,
) -> None:
    bank = RecordingBank()
    stale = bank.open(tmp_path / "before")
    for _ in range(BLOCK_FRAMES):  # a second of loud audio in the row first
        stale.on_media(np.full(FRAME, 0.9, np.float32), np.full(FRAME, 0.9, np.float32))
        bank.frame_done()
    stale.close().result()
    recorder = bank.open(tmp_path / "call")
    assert recorder.row == stale.row
    quiet = np.full(FRAME, 0.25, np.float32)
    for frame in range(BLOCK_FRAMES):
        if frame != 20:  # the call's runtime missed this tick
            recorder.on_media(quiet, quiet)
        bank.frame_done()
    recorder.close().result()
    inbound, outbound = channels(recorder)
    assert len(inbound) == BLOCK_FRAMES * FRAME
    missed = slice(20 * FRAME, 21 * FRAME)
    assert not inbound[missed].any() and not outbound[missed].any()
    rest = np.delete(inbound, np.arange(20 * FRAME, 21 * FRAME))
    assert (rest == float_to_pcm16(quiet)[0]).all()


def test_more_calls_than_rows_grow_the_bank_without_losing_a_frame(
    tmp_path: Path,
) -> None:
    bank = RecordingBank()
    count = FIRST_ROWS + 6
    signals = [tone(1.5, hz=100 + 7 * i, amplitude=0.4) for i in range(count)]
    recorders = []
    for frame in range(75):
        if frame == 30:  # the bank is full mid-second: the later calls make it grow
            recorders += [bank.open(tmp_path / f"late{i}") for i in range(6)]
        if frame == 0:
            recorders += [bank.open(tmp_path / f"call{i}") for i in range(FIRST_ROWS)]
        for i, recorder in enumerate(recorders):
            start = (frame - 30) * FRAME if i >= FIRST_ROWS else frame * FRAME
            recorder.on_media(signals[i][start : start + FRAME], signals[i][:FRAME])
        bank.frame_done()
    for recorder in recorders:
        recorder.close().result()
    for i, recorder in enumerate(recorders):
        inbound, _ = channels(recorder)
        frames_sent = 45 if i >= FIRST_ROWS else 75
        np.testing.assert_array_equal(
            inbound, float_to_pcm16(signals[i][: frames_sent * FRAME])
        )


def test_a_full_bank_whose_row_changes_hands_within_a_frame_keeps_every_frame(
    tmp_path: Path,
) -> None:
    """Every row taken; in one frame a call notes its frame and ends, and a new call
    takes its row and notes its own: one more frame than the bank has rows."""
    bank = RecordingBank()
    signals = [tone(0.5, hz=100 + 7 * i, amplitude=0.4) for i in range(FIRST_ROWS + 1)]
    recorders = [bank.open(tmp_path / f"call{i}") for i in range(FIRST_ROWS)]
    for frame in range(20):
        for i, recorder in enumerate(recorders):
            if recorder.closed:
                continue
            start = (frame - 10) * FRAME if i == FIRST_ROWS else frame * FRAME
            recorder.on_media(signals[i][start : start + FRAME], -signals[i][:FRAME])
            if frame == 10 and i == 0:
                recorder.close()
                recorders.append(bank.open(tmp_path / "late"))
        bank.frame_done()
    assert recorders[-1].row == recorders[0].row
    for recorder in recorders:
        recorder.close().result()
    for i, recorder in enumerate(recorders):
        inbound, outbound = channels(recorder)
        frames_sent = 11 if i == 0 else 10 if i == FIRST_ROWS else 20
        np.testing.assert_array_equal(
            inbound, float_to_pcm16(signals[i][: frames_sent * FRAME])
        )
        np.testing.assert_array_equal(
            outbound, float_to_pcm16(np.tile(-signals[i][:FRAME], frames_sent))
        )


def test_a_frame_of_another_length_is_cut_or_padded_to_20_ms(tmp_path: Path) -> None:
    bank = RecordingBank()
    recorder = bank.open(tmp_path / "call")
    other = bank.open(tmp_path / "other")
    signal = tone(0.06, amplitude=0.5)
    recorder.on_media(signal[:FRAME], signal[:FRAME])
    other.on_media(signal[:FRAME], signal[:FRAME])
    bank.frame_done()
    recorder.on_media(signal[:200], signal[: FRAME + 40])  # short, long
    other.on_media(signal[FRAME : 2 * FRAME], signal[FRAME : 2 * FRAME])
    bank.frame_done()
    recorder.close().result()
    other.close().result()
    inbound, outbound = channels(recorder)
    assert len(inbound) == 2 * FRAME
    np.testing.assert_array_equal(
        inbound[FRAME : FRAME + 200], float_to_pcm16(signal[:200])
    )
    assert not inbound[FRAME + 200 :].any()
    np.testing.assert_array_equal(outbound[FRAME:], float_to_pcm16(signal[:FRAME]))
    np.testing.assert_array_equal(
        channels(other)[0], float_to_pcm16(signal[: 2 * FRAME])
    )


def test_ten_minutes_of_frames_do_not_grow_memory(tmp_path: Path) -> None:
    bank = RecordingBank()
    recorder = bank.open(tmp_path / "call")
    frame = tone(0.02)
    # Only what the recorders' code allocates (other threads run in the suite).
    ours = [
        tracemalloc.Filter(True, "*/recordings/recorder.py"),
        tracemalloc.Filter(True, "*/audio/*.py"),
    ]

    def one_second() -> None:
        for _ in range(BLOCK_FRAMES):
            recorder.on_media(frame, frame)
            bank.frame_done()
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
    assert spool.audio_path(recorder.directory).stat().st_size == 44 + 4 * 610 * 16000


def test_the_file_grows_a_second_at_a_time_for_every_call_at_once(
    tmp_path: Path,
) -> None:
    bank = RecordingBank()
    recorders = [bank.open(tmp_path / f"call{i}") for i in range(3)]
    frame = tone(0.02)
    sizes: list[list[int]] = []
    for _ in range(250):  # five seconds
        for recorder in recorders:
            recorder.on_media(frame, frame)
        bank.frame_done()
        wait_for_spool_writes()
        sizes.append([spool.audio_path(r.directory).stat().st_size for r in recorders])
    for call in range(3):
        grown = [b[call] - a[call] for a, b in itertools.pairwise(sizes) if b != a]
        assert grown == [64000] * 5  # one write a second, at the same frame for all
    for recorder in recorders:
        recorder.close().result()
        path = spool.audio_path(recorder.directory)
        assert path.stat().st_size == 44 + 5 * 64000  # nothing left for close()
