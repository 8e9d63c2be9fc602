"""PlaybackQueue on its own: what each 20 ms frame holds, and what it reports when."""

from __future__ import annotations

import numpy as np
import pytest

from assets.playback import (
    CALL_ENDED,
    COMPLETED,
    PLAYING,
    QUEUED,
    STOPPED,
    Playback,
    PlaybackQueue,
)
from audio import FRAME_SAMPLES
from audio.codecs import pcm16_to_float


def pcm(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-32768, 32768, count).astype(np.int16)


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def started(self, playback: Playback) -> None:
        self.events.append(("started", playback.playback_id, playback.state))

    def finished(self, playback: Playback) -> None:
        self.events.append(("finished", playback.playback_id, playback.state))


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def queue(log: Log) -> PlaybackQueue:
    return PlaybackQueue(on_started=log.started, on_finished=log.finished)


def play_frames(queue: PlaybackQueue, frames: int) -> tuple[np.ndarray, list[int]]:
    out = np.full(FRAME_SAMPLES, 7.0, dtype=np.float32)
    heard, counts = [], []
    for _ in range(frames):
        counts.append(queue.read_into(out))
        heard.append(out.copy())
    return np.concatenate(heard), counts


def test_idle_queue_is_silence(queue: PlaybackQueue) -> None:
    heard, counts = play_frames(queue, 3)

    assert not heard.any()
    assert counts == [0, 0, 0]


def test_playback_is_the_samples_exactly_then_silence(
    queue: PlaybackQueue, log: Log
) -> None:
    samples = pcm(1000, 1)
    queue.add(Playback("p1", "a1", samples))

    heard, counts = play_frames(queue, 5)

    np.testing.assert_array_equal(heard[:1000], pcm16_to_float(samples))
    assert not heard[1000:].any()
    assert counts == [320, 320, 320, 40, 0]
    assert log.events == [("started", "p1", PLAYING), ("finished", "p1", COMPLETED)]


def test_queued_playbacks_follow_each_other_without_a_gap(
    queue: PlaybackQueue, log: Log
) -> None:
    first, second = pcm(500, 2), pcm(700, 3)
    one, two = Playback("p1", "a1", first), Playback("p2", "a2", second)
    queue.add(one)
    queue.add(two)
    assert (one.state, two.state) == (PLAYING, QUEUED)
    assert two.started_at is None

    heard, _ = play_frames(queue, 4)

    expected = pcm16_to_float(np.concatenate([first, second]))
    np.testing.assert_array_equal(heard[:1200], expected)
    assert not heard[1200:].any()
    assert log.events == [
        ("started", "p1", PLAYING),
        ("finished", "p1", COMPLETED),
        ("started", "p2", PLAYING),
        ("finished", "p2", COMPLETED),
    ]
    assert one.played_ms == 500 // 16
    assert two.started_at is not None and one.started_at is not None
    assert two.started_at >= one.started_at


def test_interrupt_stops_current_and_queued_and_plays_at_once(
    queue: PlaybackQueue, log: Log
) -> None:
    queue.add(Playback("p1", "a1", pcm(5000, 4)))
    queue.add(Playback("p2", "a2", pcm(5000, 5)))
    play_frames(queue, 2)
    new = pcm(400, 6)

    stopped = queue.add(Playback("p3", "a3", new), interrupt=True)
    heard, _ = play_frames(queue, 2)

    assert [p.playback_id for p in stopped] == ["p1", "p2"]
    assert [p.state for p in stopped] == [STOPPED, STOPPED]
    assert stopped[0].played_ms == 640 // 16
    np.testing.assert_array_equal(heard[:400], pcm16_to_float(new))
    assert log.events == [
        ("started", "p1", PLAYING),
        ("finished", "p1", STOPPED),
        ("finished", "p2", STOPPED),
        ("started", "p3", PLAYING),
        ("finished", "p3", COMPLETED),
    ]


def test_stop_silences_the_next_frame_and_drops_the_queue(
    queue: PlaybackQueue, log: Log
) -> None:
    queue.add(Playback("p1", "a1", pcm(5000, 7)))
    queue.add(Playback("p2", "a2", pcm(5000, 8)))
    play_frames(queue, 1)

    stopped = queue.stop()
    heard, counts = play_frames(queue, 2)

    assert [p.state for p in stopped] == [STOPPED, STOPPED]
    assert not heard.any()
    assert counts == [0, 0]
    assert queue.stop() == []
    assert len(queue) == 0


def test_call_end_finishes_everything_with_call_ended(
    queue: PlaybackQueue, log: Log
) -> None:
    queue.add(Playback("p1", "a1", pcm(5000, 9)))
    queue.add(Playback("p2", "a2", pcm(5000, 10)))
    play_frames(queue, 1)

    queue.on_call_ended({})

    assert log.events[1:] == [
        ("finished", "p1", CALL_ENDED),
        ("finished", "p2", CALL_ENDED),
    ]


def test_a_frame_of_a_30_minute_asset_costs_microseconds() -> None:
    # Slicing, not copying: a frame costs the same whatever the asset's length.
    import time

    def cost(samples: np.ndarray) -> float:
        queue = PlaybackQueue(on_started=lambda p: None, on_finished=lambda p: None)
        queue.add(Playback("p", "a", samples))
        out = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        start = time.perf_counter()
        for _ in range(2000):
            queue.read_into(out)
        return (time.perf_counter() - start) / 2000

    long_cost = cost(np.zeros(16000 * 1800, dtype=np.int16))
    assert long_cost < 50e-6, long_cost
