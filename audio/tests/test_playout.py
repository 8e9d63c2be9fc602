from __future__ import annotations

import numpy as np
import pytest

from audio.playout import PlayoutBuffer

FRAME = 320


def ramp(start: int, count: int) -> np.ndarray:
    return (np.arange(start, start + count) / 10_000).astype(np.float32)


def read_frame(buffer: PlayoutBuffer) -> tuple[np.ndarray, int]:
    out = np.full(FRAME, 9.0, dtype=np.float32)
    return out, buffer.read_into(out)


def test_reads_return_written_samples_in_order_then_silence() -> None:
    buffer = PlayoutBuffer(1000)
    assert buffer.write(ramp(0, 500)) == 500

    first, copied = read_frame(buffer)
    assert copied == 320
    np.testing.assert_array_equal(first, ramp(0, 320))

    second, copied = read_frame(buffer)
    assert copied == 180
    np.testing.assert_array_equal(second[:180], ramp(320, 180))
    np.testing.assert_array_equal(second[180:], np.zeros(140, dtype=np.float32))
    assert (buffer.buffered, buffer.written_total, buffer.played_total) == (0, 500, 500)


def test_underrun_reads_silence_and_counts_no_played_samples() -> None:
    buffer = PlayoutBuffer(1000)

    out, copied = read_frame(buffer)

    assert copied == 0
    np.testing.assert_array_equal(out, np.zeros(FRAME, dtype=np.float32))
    assert buffer.played_total == 0


def test_write_accepts_only_what_fits_and_drops_the_rest() -> None:
    buffer = PlayoutBuffer(1000)

    assert buffer.write(ramp(0, 1200)) == 1000
    assert buffer.write(ramp(1200, 10)) == 0
    assert (buffer.buffered, buffer.capacity, buffer.written_total) == (
        1000,
        1000,
        1000,
    )

    read_frame(buffer)
    assert buffer.write(ramp(1000, 400)) == 320
    out = np.empty(1000, dtype=np.float32)
    assert buffer.read_into(out) == 1000
    np.testing.assert_array_equal(out, ramp(320, 1000))


def test_audio_survives_many_trips_around_the_ring() -> None:
    buffer = PlayoutBuffer(700)
    sent = ramp(0, 20_000)
    received = []
    written = 0
    for chunk in [130, 333, 5, 480, 250] * 40:
        written += buffer.write(sent[written : written + chunk])
        out, copied = read_frame(buffer)
        received.append(out[:copied])

    played = np.concatenate(received)
    assert len(played) == buffer.played_total > 10 * buffer.capacity
    np.testing.assert_array_equal(played, sent[: len(played)])


def test_marks_are_reported_once_playback_reaches_them() -> None:
    buffer = PlayoutBuffer(2000)
    buffer.write(ramp(0, 320))
    buffer.add_mark("first")
    buffer.write(ramp(320, 400))
    buffer.add_mark("second")
    buffer.add_mark("third")

    assert buffer.pop_played_marks() == []
    read_frame(buffer)
    assert buffer.pop_played_marks() == [("first", 320)]
    read_frame(buffer)
    assert buffer.pop_played_marks() == []
    read_frame(buffer)
    assert buffer.pop_played_marks() == [("second", 720), ("third", 720)]
    assert buffer.pop_played_marks() == []


def test_mark_added_to_empty_buffer_is_reported_after_the_next_read() -> None:
    buffer = PlayoutBuffer(1000)
    buffer.add_mark("greeting-start")

    _, copied = read_frame(buffer)

    assert copied == 0
    assert buffer.pop_played_marks() == [("greeting-start", 0)]


def test_mark_added_after_everything_played_is_reported_at_that_position() -> None:
    buffer = PlayoutBuffer(1000)
    buffer.write(ramp(0, 320))
    read_frame(buffer)
    buffer.add_mark("done")

    read_frame(buffer)

    assert buffer.pop_played_marks() == [("done", 320)]


def test_clear_returns_pending_marks_and_drops_audio() -> None:
    buffer = PlayoutBuffer(2000)
    buffer.write(ramp(0, 640))
    buffer.add_mark("a")
    buffer.write(ramp(640, 320))
    buffer.add_mark("b")
    read_frame(buffer)

    assert buffer.clear() == ["a", "b"]

    assert (buffer.buffered, buffer.written_total, buffer.played_total) == (0, 320, 320)
    out, copied = read_frame(buffer)
    assert copied == 0
    np.testing.assert_array_equal(out, np.zeros(FRAME, dtype=np.float32))
    assert buffer.pop_played_marks() == []


def test_audio_and_marks_after_clear_play_at_consistent_positions() -> None:
    buffer = PlayoutBuffer(1000)
    buffer.write(ramp(0, 900))
    read_frame(buffer)
    buffer.clear()

    buffer.write(ramp(5000, 320))
    buffer.add_mark("after-clear")
    out, copied = read_frame(buffer)

    assert copied == 320
    np.testing.assert_array_equal(out, ramp(5000, 320))
    assert buffer.pop_played_marks() == [("after-clear", 640)]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PlayoutBuffer(0)
