from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from audio.jitter import CONCEALMENT_GAIN, JitterBuffer

FRAME = 320


def speech_like(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.9, 0.9, count).astype(np.float32)


def put_packet(
    buffer: JitterBuffer,
    signal: np.ndarray,
    index: int,
    *,
    size: int = FRAME,
    first_sequence: int = 1000,
    first_timestamp: int = 50_000,
) -> bool:
    sequence = (first_sequence + index) & 0xFFFF
    timestamp = (first_timestamp + index * size) & 0xFFFFFFFF
    return buffer.put(sequence, timestamp, signal[index * size : (index + 1) * size])


def read_frames(buffer: JitterBuffer, count: int) -> tuple[np.ndarray, list[int]]:
    frames, reals = [], []
    for _ in range(count):
        out = np.full(FRAME, 9.0, dtype=np.float32)
        reals.append(buffer.read_into(out))
        frames.append(out)
    return np.concatenate(frames), reals


def test_in_order_packets_play_sample_exact_after_the_prebuffer_delay() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(20 * FRAME)
    played, reals = [], []

    for index in range(20):
        put_packet(buffer, signal, index)
        audio, real = read_frames(buffer, 1)
        played.append(audio)
        reals += real

    # Playout waits for 60 ms (three packets), then runs two frames behind arrival.
    assert reals == [0, 0] + [FRAME] * 18
    np.testing.assert_array_equal(played[0], np.zeros(FRAME, dtype=np.float32))
    np.testing.assert_array_equal(np.concatenate(played[2:]), signal[: 18 * FRAME])
    assert buffer.playing
    assert buffer.depth_ms == 40
    assert (buffer.received, buffer.lost, buffer.late, buffer.underruns) == (
        20,
        0,
        0,
        0,
    )


def test_packets_reordered_by_network_delay_reassemble_the_exact_signal() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(200 * FRAME, seed=1)
    # Packet k leaves at tick k and arrives up to two ticks later, often out of order.
    arrival = np.arange(200) + np.random.default_rng(2).integers(0, 3, 200)
    played = []

    for tick in range(204):
        for index in np.flatnonzero(arrival == tick):
            assert put_packet(buffer, signal, int(index))
        played.append(read_frames(buffer, 1)[0])

    assert (np.diff(arrival) < 0).sum() == 17
    audio = np.concatenate(played)
    start = np.flatnonzero(audio != 0)[0]
    # Playout starts once 60 ms is buffered, two or more ticks after the first send.
    assert 2 * FRAME <= start <= 4 * FRAME
    np.testing.assert_array_equal(audio[start : start + len(signal)], signal)
    assert (buffer.late, buffer.lost, buffer.concealed_frames) == (0, 0, 0)


def test_packets_swapped_before_playout_starts_play_in_timestamp_order() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(4 * FRAME)

    for index in (2, 0, 3, 1):
        put_packet(buffer, signal, index)

    audio, reals = read_frames(buffer, 4)
    assert reals == [FRAME] * 4
    np.testing.assert_array_equal(audio, signal)


def test_duplicates_are_dropped_and_counted_without_doubling_the_audio() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(6 * FRAME)

    for index in (0, 1, 1, 2, 0, 3):
        put_packet(buffer, signal, index)
    audio, _ = read_frames(buffer, 2)
    # A copy of a packet that has already played is a duplicate, not late.
    assert not put_packet(buffer, signal, 0)
    for index in (4, 5):
        put_packet(buffer, signal, index)
    rest, reals = read_frames(buffer, 4)

    np.testing.assert_array_equal(np.concatenate([audio, rest]), signal)
    assert reals == [FRAME] * 4
    assert (buffer.received, buffer.duplicates, buffer.late) == (9, 3, 0)


def test_late_packet_is_dropped_and_its_gap_stays_concealed() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(8 * FRAME)
    for index in (0, 1, 2, 4, 5, 6, 7):
        put_packet(buffer, signal, index)

    before, _ = read_frames(buffer, 4)
    assert not put_packet(buffer, signal, 3)
    after, reals = read_frames(buffer, 4)

    np.testing.assert_array_equal(before[: 3 * FRAME], signal[: 3 * FRAME])
    np.testing.assert_array_equal(
        before[3 * FRAME :], CONCEALMENT_GAIN * signal[640:960]
    )
    np.testing.assert_array_equal(after, signal[4 * FRAME :])
    assert reals == [FRAME] * 4
    assert (buffer.late, buffer.lost, buffer.concealed_frames) == (1, 1, 1)


def test_a_packet_partly_played_already_contributes_its_unplayed_samples() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(3 * 480, seed=3)
    put_packet(buffer, signal, 0, size=480)
    put_packet(buffer, signal, 2, size=480)
    read_frames(buffer, 1)  # samples 0-319

    frame, real = read_frames(buffer, 1)  # 320-479 real, 480-639 concealed
    assert put_packet(buffer, signal, 1, size=480)  # its first 160 samples too late
    rest, reals = read_frames(buffer, 2)

    np.testing.assert_array_equal(frame[:160], signal[320:480])
    np.testing.assert_array_equal(frame[160:], CONCEALMENT_GAIN * signal[160:320])
    assert real == [160]
    np.testing.assert_array_equal(rest, signal[640:1280])
    assert reals == [FRAME, FRAME]
    assert (buffer.late, buffer.lost) == (1, 0)


def test_one_lost_packet_repeats_the_previous_frame_attenuated() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(8 * FRAME, seed=4)
    for index in (0, 1, 2, 4, 5, 6, 7):
        put_packet(buffer, signal, index)

    audio, reals = read_frames(buffer, 8)

    expected = signal.copy()
    expected[3 * FRAME : 4 * FRAME] = CONCEALMENT_GAIN * signal[2 * FRAME : 3 * FRAME]
    np.testing.assert_array_equal(audio, expected)
    assert reals == [FRAME] * 3 + [0] + [FRAME] * 4
    assert (buffer.lost, buffer.concealed_frames, buffer.underruns) == (1, 1, 0)


def test_a_longer_loss_fades_to_silence_after_one_repeated_frame() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(9 * FRAME, seed=5)
    for index in (0, 1, 2, 6, 7, 8):
        put_packet(buffer, signal, index)

    audio, reals = read_frames(buffer, 9)

    expected = signal.copy()
    expected[3 * FRAME : 4 * FRAME] = CONCEALMENT_GAIN * signal[2 * FRAME : 3 * FRAME]
    expected[4 * FRAME : 6 * FRAME] = 0.0
    np.testing.assert_array_equal(audio, expected)
    assert reals == [FRAME] * 3 + [0] * 3 + [FRAME] * 3
    assert (buffer.lost, buffer.concealed_frames) == (3, 3)


def test_a_gap_in_a_full_buffer_still_repeats_the_frame_just_played() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=40, max_ms=100)
    signal = speech_like(7 * FRAME, seed=20)
    for index in (0, 1):
        put_packet(buffer, signal, index)
    read_frames(buffer, 1)
    for index in (3, 4, 5):
        put_packet(buffer, signal, index)
    played, _ = read_frames(buffer, 1)

    # Packet 6 fills the buffer to max_ms, wrapping onto the frame just played.
    put_packet(buffer, signal, 6)
    assert buffer.depth_ms == 100
    audio, reals = read_frames(buffer, 5)

    np.testing.assert_array_equal(played, signal[FRAME : 2 * FRAME])
    np.testing.assert_array_equal(audio[:FRAME], CONCEALMENT_GAIN * played)
    np.testing.assert_array_equal(audio[FRAME:], signal[3 * FRAME :])
    assert reals == [0] + [FRAME] * 4
    assert (buffer.overflow_dropped, buffer.lost) == (0, 1)


def test_a_lost_half_frame_packet_is_concealed_only_where_samples_are_missing() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(10 * 160, seed=6)
    for index in range(10):
        if index != 5:
            put_packet(buffer, signal, index, size=160)

    audio, reals = read_frames(buffer, 5)

    expected = signal.copy()
    expected[800:960] = CONCEALMENT_GAIN * signal[480:640]
    np.testing.assert_array_equal(audio, expected)
    assert reals == [FRAME, FRAME, 160, FRAME, FRAME]
    assert buffer.lost == 1


def test_a_burst_beyond_max_ms_drops_the_oldest_audio() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=40, max_ms=100)
    signal = speech_like(12 * FRAME, seed=7)

    for index in (0, 1, 3, 4, 5, 6, 7, 8):
        put_packet(buffer, signal, index)

    assert buffer.overflow_dropped == 3
    assert buffer.depth_ms == 100
    audio, reals = read_frames(buffer, 5)
    np.testing.assert_array_equal(audio, signal[4 * FRAME : 9 * FRAME])
    assert reals == [FRAME] * 5
    # Packet 2 was skipped with the dropped audio: it is lost, and late if it comes.
    assert not put_packet(buffer, signal, 2)
    assert (buffer.late, buffer.lost, buffer.duplicates) == (1, 1, 0)


def test_a_burst_while_playing_skips_ahead_and_stays_within_max_ms() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=40, max_ms=100)
    signal = speech_like(12 * FRAME, seed=8)
    for index in range(2):
        put_packet(buffer, signal, index)
    first, _ = read_frames(buffer, 1)

    for index in range(2, 12):
        put_packet(buffer, signal, index)
    rest, reals = read_frames(buffer, 6)

    np.testing.assert_array_equal(first, signal[:FRAME])
    np.testing.assert_array_equal(rest[: 5 * FRAME], signal[7 * FRAME :])
    assert reals == [FRAME] * 5 + [0]
    assert (buffer.overflow_dropped, buffer.lost, buffer.underruns) == (6, 0, 1)


def test_sequence_numbers_and_timestamps_wrap_around_without_a_glitch() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(8 * FRAME, seed=9)
    first_timestamp = 2**32 - 3 * FRAME
    order = (0, 1, 2, 4, 3, 5, 6, 7)  # 65535 arrives after 0

    for index in order:
        put_packet(
            buffer,
            signal,
            index,
            first_sequence=65_532,
            first_timestamp=first_timestamp,
        )
    duplicate = put_packet(
        buffer, signal, 3, first_sequence=65_532, first_timestamp=first_timestamp
    )
    audio, reals = read_frames(buffer, 8)

    assert not duplicate
    np.testing.assert_array_equal(audio, signal)
    assert reals == [FRAME] * 8
    assert (buffer.duplicates, buffer.lost, buffer.late) == (1, 0, 0)


def test_after_an_underrun_playout_waits_for_the_target_and_resumes_exactly() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(7 * FRAME, seed=10)
    for index in range(3):
        put_packet(buffer, signal, index)
    first, _ = read_frames(buffer, 3)

    underrun, reals = read_frames(buffer, 2)
    assert reals == [0, 0]
    assert buffer.underruns == 1
    assert not buffer.playing
    put_packet(buffer, signal, 3)
    put_packet(buffer, signal, 4)
    waiting, waiting_reals = read_frames(buffer, 1)
    put_packet(buffer, signal, 5)
    put_packet(buffer, signal, 6)
    resumed, resumed_reals = read_frames(buffer, 4)

    np.testing.assert_array_equal(first, signal[: 3 * FRAME])
    expected_underrun = np.zeros(2 * FRAME, dtype=np.float32)
    expected_underrun[:FRAME] = CONCEALMENT_GAIN * signal[2 * FRAME : 3 * FRAME]
    np.testing.assert_array_equal(underrun, expected_underrun)
    assert waiting_reals == [0]
    np.testing.assert_array_equal(waiting, np.zeros(FRAME, dtype=np.float32))
    np.testing.assert_array_equal(resumed, signal[3 * FRAME :])
    assert resumed_reals == [FRAME] * 4
    assert (buffer.underruns, buffer.lost, buffer.late) == (1, 0, 0)


def test_a_partial_frame_at_an_underrun_is_kept_for_the_resumed_playout() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=40, max_ms=200)
    signal = speech_like(8 * 160, seed=11)
    for index in range(5):
        put_packet(buffer, signal, index, size=160)

    first, reals = read_frames(buffer, 3)
    for index in range(5, 8):
        put_packet(buffer, signal, index, size=160)
    resumed, resumed_reals = read_frames(buffer, 2)

    np.testing.assert_array_equal(first[:640], signal[:640])
    assert reals == [FRAME, FRAME, 0]
    np.testing.assert_array_equal(resumed, signal[640:])
    assert resumed_reals == [FRAME, FRAME]
    assert buffer.underruns == 1


def test_a_sender_pause_with_consecutive_sequence_numbers_is_not_loss() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=40, max_ms=200)
    signal = speech_like(4 * FRAME, seed=12)
    buffer.put(10, 0, signal[:FRAME])
    buffer.put(11, FRAME, signal[FRAME : 2 * FRAME])
    talk, _ = read_frames(buffer, 3)

    # Two seconds of silence suppression: the timestamp jumps, the sequence does not.
    resume = 2 * FRAME + 2 * 16_000
    buffer.put(12, resume, signal[2 * FRAME : 3 * FRAME])
    buffer.put(13, resume + FRAME, signal[3 * FRAME :])
    after, reals = read_frames(buffer, 2)

    np.testing.assert_array_equal(talk[: 2 * FRAME], signal[: 2 * FRAME])
    np.testing.assert_array_equal(after, signal[2 * FRAME :])
    assert reals == [FRAME, FRAME]
    assert (buffer.lost, buffer.overflow_dropped, buffer.underruns) == (0, 0, 1)


def test_mixed_packet_sizes_are_reassembled_sample_exact_by_timestamp() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)
    signal = speech_like(40 * FRAME, seed=13)
    sizes = np.random.default_rng(14).choice([160, 320, 480], 60)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    count = int(np.searchsorted(starts, len(signal)))
    packets = [
        (int(starts[i]), int(min(starts[i + 1], len(signal)))) for i in range(count)
    ]
    # Swap neighbours to reorder within 30 ms.
    order = list(range(count))
    for i in range(1, count - 1, 3):
        order[i], order[i + 1] = order[i + 1], order[i]
    played = []

    for index in order:
        begin, end = packets[index]
        assert buffer.put(7 + index, 90_000 + begin, signal[begin:end])
        while buffer.depth_ms >= 80:
            played.append(read_frames(buffer, 1)[0])
    while buffer.depth_ms >= 20:
        played.append(read_frames(buffer, 1)[0])

    np.testing.assert_array_equal(np.concatenate(played), signal)
    assert (buffer.lost, buffer.late, buffer.concealed_frames) == (0, 0, 0)


def test_timestamps_in_an_8_khz_clock_place_16_khz_samples() -> None:
    buffer = JitterBuffer(
        frame_samples=FRAME, target_ms=60, max_ms=200, clock_rate=8000
    )
    signal = speech_like(6 * FRAME, seed=15)

    # 30 ms packets: 480 samples at 16 kHz, 240 ticks of the 8 kHz RTP clock.
    for index in (1, 0, 3, 2):
        buffer.put(
            index, 160_000 + 240 * index, signal[480 * index : 480 * (index + 1)]
        )

    audio, reals = read_frames(buffer, 6)
    np.testing.assert_array_equal(audio, signal)
    assert reals == [FRAME] * 6


def test_put_copies_the_samples_so_the_caller_may_reuse_its_buffer() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=20, max_ms=100)
    packet = speech_like(FRAME, seed=16)
    original = packet.copy()

    buffer.put(0, 0, packet)
    packet[:] = 0.0
    audio, _ = read_frames(buffer, 1)

    np.testing.assert_array_equal(audio, original)


def test_a_writer_thread_and_a_reader_thread_reconstruct_the_signal_exactly() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=500)
    signal = speech_like(500 * 160, seed=17)
    rng = np.random.default_rng(18)
    deadline = time.monotonic() + 30
    done = threading.Event()

    def write() -> None:
        # Groups of four 10 ms packets leave in a random order; the writer holds off
        # while the ring is nearly full, so the ring wraps many times.
        for group in range(0, 500, 4):
            while buffer.depth_ms > 400 and time.monotonic() < deadline:
                time.sleep(0.0002)
            for index in group + rng.permutation(4):
                put_packet(buffer, signal, int(index), size=160, first_sequence=65_300)
        done.set()

    played, out, reals = [], np.empty(FRAME, dtype=np.float32), []
    # Switching threads every few bytecodes preempts put and read_into mid-way.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    writer = threading.Thread(target=write)
    try:
        writer.start()
        # Read only when a whole reordering group lies ahead, as a real-time clock
        # running 100 ms behind the sender would.
        while time.monotonic() < deadline:
            finished = done.is_set()
            depth = buffer.depth_ms
            if depth >= 100 or (finished and depth >= 20):
                reals.append(buffer.read_into(out))
                played.append(out.copy())
            elif finished:
                break
            else:
                time.sleep(0.0001)
    finally:
        writer.join()
        sys.setswitchinterval(switch_interval)

    assert reals == [FRAME] * 250

    np.testing.assert_array_equal(np.concatenate(played), signal)
    assert (buffer.received, buffer.late, buffer.lost) == (500, 0, 0)
    assert (buffer.overflow_dropped, buffer.concealed_frames) == (0, 0)


def test_read_into_takes_exactly_one_frame() -> None:
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=60, max_ms=200)

    with pytest.raises(ValueError, match="one frame"):
        buffer.read_into(np.zeros(FRAME + 1, dtype=np.float32))


@pytest.mark.parametrize(
    "options",
    [
        {"target_ms": 300, "max_ms": 200},
        {"frame_samples": 0},
        {"frame_samples": 4000, "max_ms": 200},
        {"sample_rate": 0},
        {"clock_rate": 0},
    ],
    ids=[
        "target-over-max",
        "empty-frame",
        "frame-over-max",
        "no-sample-rate",
        "no-clock-rate",
    ],
)
def test_inconsistent_sizes_are_rejected(options: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        JitterBuffer(**options)


def flood_while_reading(
    frames: np.ndarray, seed: int
) -> tuple[JitterBuffer, list[int], list[Exception]]:
    """Put every frame from a thread while reading frames as fast as possible."""
    buffer = JitterBuffer(frame_samples=FRAME, target_ms=20, max_ms=100)
    index_of = {frame.tobytes(): index for index, frame in enumerate(frames)}
    rng = np.random.default_rng(seed)
    done = threading.Event()
    errors: list[Exception] = []

    def write() -> None:
        try:
            for group in range(0, len(frames), 4):
                for index in group + rng.permutation(4):
                    buffer.put(int(index), int(index) * FRAME, frames[index])
        except Exception as error:
            errors.append(error)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    played, out = [], np.empty(FRAME, dtype=np.float32)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        finished = done.is_set()
        if buffer.read_into(out) == FRAME:
            played.append(index_of.get(out.tobytes(), -1))
        elif finished and not buffer.playing:
            # Stalled with less than a frame buffered and nothing more to come.
            break
    writer.join()
    return buffer, played, errors


def test_concurrent_bursts_that_overflow_never_corrupt_or_reorder_frames() -> None:
    # Most audio is dropped when the writer runs far faster than real time, but
    # every frame played must be a whole packet, in order, and every packet must be
    # accounted for.
    frames = speech_like(2000 * FRAME, seed=19).reshape(2000, FRAME)
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for seed in range(5):
            buffer, played, errors = flood_while_reading(frames, seed)

            assert errors == []
            assert -1 not in played
            assert played == sorted(set(played))
            assert (buffer.received, buffer.duplicates) == (2000, 0)
            assert len(played) + buffer.overflow_dropped + buffer.late == 2000
    finally:
        sys.setswitchinterval(switch_interval)
