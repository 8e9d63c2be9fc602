"""The media clock on its own: phases, and a member moved to the phase after its input."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from calls.runtime.clock import FRAME_S, PHASES, MediaClock
from calls.runtime.engine import Engine
from calls.tests.conftest import wait_for
from calls.tests.media_client import FRAME, MediaClient
from calls.tests.test_media_socket import media_url, place
from calls.transports.websocket.link import ALIGN_FRAMES, REALIGN_FRAMES, MediaLink
from config import home
from conftest import LiveServer, Tenant


class Member:
    """Notes the clock's frame count at each of its ticks."""

    def __init__(self, clock: MediaClock) -> None:
        self.clock = clock
        self.frames: list[int] = []

    def tick(self) -> None:
        self.frames.append(self.clock.ticks)


def run(clock: MediaClock, until: Callable[[], bool], timeout: float = 10.0) -> None:
    async def main() -> None:
        clock.start()
        try:
            async with asyncio.timeout(timeout):
                while not until():
                    await asyncio.sleep(0.005)
        finally:
            await clock.stop()

    asyncio.run(main())


def arriving_before(clock: MediaClock, phase: int, ms: float) -> list[float]:
    """25 frames' arrival times, each ``ms`` before ``phase`` ticks (the stopped clock's
    last ticks set on an exact 5 ms grid: a busy machine's late ticks are not what is
    tested here)."""
    base = clock.phase_times[0]
    clock.phase_times = [base + p * FRAME_S / PHASES for p in range(PHASES)]
    at = clock.phase_times[phase] - ms / 1000
    return [at - k * FRAME_S for k in range(25)]


def test_a_member_aligned_to_its_input_moves_between_frames_and_misses_no_frame() -> (
    None
):
    clock = MediaClock(on_error=lambda member, exc: None)
    members = [Member(clock) for _ in range(8)]
    for member in members:
        clock.add(member)
    assert [clock.phase_of(m) for m in members] == [0, 1, 2, 3, 0, 1, 2, 3]
    run(clock, lambda: clock.ticks >= 10)

    moved = members[0]
    # Its input arrives 3 ms before phase 2 ticks: phase 2 is the one to be in.
    clock.align(moved, arriving_before(clock, 2, 3.0))
    assert clock.phase_of(moved) == 0  # not before the frame ends
    start = clock.ticks
    run(clock, lambda: clock.ticks >= start + 10)

    assert clock.phase_of(moved) == 2 and clock.moves == 1
    # Every member, the moved one included, was ticked exactly once in every frame.
    for member in members:
        first = member.frames[0]
        assert member.frames == list(range(first, first + len(member.frames)))
        assert len(member.frames) >= clock.ticks - 1


@pytest.mark.parametrize(("ms", "later"), [(2.5, 0), (4.0, 0), (1.0, 1)])
def test_align_picks_the_phase_that_comes_soonest_after_the_input(
    ms: float, later: int
) -> None:
    """... but not one that ticks within 2 ms of the input: a frame a little late
    would miss it."""
    clock = MediaClock(on_error=lambda member, exc: None)
    members = [Member(clock) for _ in range(4)]
    for member in members:
        clock.add(member)
    run(clock, lambda: clock.ticks >= 3)

    for target in range(PHASES):
        member = members[(target + 2) % PHASES]
        clock.align(member, arriving_before(clock, target, ms))
    start = clock.ticks
    run(clock, lambda: clock.ticks >= start + 2)

    for target in range(PHASES):
        expected = (target + later) % PHASES
        assert clock.phase_of(members[(target + 2) % PHASES]) == expected


def test_alignment_does_not_pile_every_member_into_one_phase() -> None:
    """Clients that started together all arrive at the same moment: the phase after it
    takes its share and a little more, the others the next best."""
    clock = MediaClock(on_error=lambda member, exc: None)
    members = [Member(clock) for _ in range(40)]
    for member in members:
        clock.add(member)
    run(clock, lambda: clock.ticks >= 3)

    arrivals = arriving_before(clock, 1, 3.0)
    for member in members:
        clock.align(member, arrivals)
    start = clock.ticks
    run(clock, lambda: clock.ticks >= start + 2)

    sizes = [sum(clock.phase_of(m) == p for m in members) for p in range(PHASES)]
    # 40 members: 10 per phase evenly, room for 10 × 1.25 + 2 = 14.5.
    assert sizes[1] == 15 and max(sizes) == 15 and sum(sizes) == 40
    # The phase just before the arrivals (a wait of 15-20 ms) lost members, none came.
    assert sizes[0] < 10


def test_a_member_not_in_the_clock_or_no_arrivals_change_nothing() -> None:
    clock = MediaClock(on_error=lambda member, exc: None)
    member, stranger = Member(clock), Member(clock)
    clock.add(member)
    run(clock, lambda: clock.ticks >= 3)

    clock.align(stranger, arriving_before(clock, 2, 3.0))
    clock.align(member, [])
    start = clock.ticks
    run(clock, lambda: clock.ticks >= start + 2)
    assert clock.phase_of(member) == 0 and clock.phase_of(stranger) is None
    assert clock.moves == 0


def _link() -> MediaLink:
    return MediaLink(
        send_audio=lambda data: None,
        send_json=lambda payload: None,
        close=lambda code: None,
        capacity_ms=10_000,
        pause_ms=500,
        resume_ms=250,
    )


def test_a_media_link_hands_over_25_arrivals_at_the_start_and_every_10_s() -> None:
    link = _link()
    handed: list[tuple[int, list[float]]] = []
    link.align = lambda arrivals: handed.append((link.frames_in, arrivals))
    frame = bytes(4 * 320)
    for _ in range(2 * (ALIGN_FRAMES + REALIGN_FRAMES) + 3):
        link.push_audio(frame)
        link.buffer.clear()

    assert [at for at, _ in handed] == [ALIGN_FRAMES, 2 * ALIGN_FRAMES + REALIGN_FRAMES]
    for _, arrivals in handed:
        assert len(arrivals) == ALIGN_FRAMES and arrivals == sorted(arrivals)


@pytest.mark.parametrize("align", [True, False])
@pytest.mark.usefixtures("fast_network")
def test_a_live_socket_streaming_in_step_moves_its_call_off_the_phase_it_just_missed(
    engine: Engine, tenant: Tenant, asgi_server: LiveServer, settings: Any, align: bool
) -> None:
    """Over a real socket, a client that sends a frame each time it hears one sends
    just after its call ticked: in its first phase each frame waits almost 20 ms for
    the next tick. After 25 frames the call is moved to a phase after them (or, with
    MEDIA_ALIGN_TICKS off, stays)."""
    settings.MEDIA_ALIGN_TICKS = align
    session_id, call_id = place(tenant.client())
    url = media_url(asgi_server, session_id, call_id)
    runtime = engine.runtimes[call_id]
    clock = engine.clock
    wait_for(lambda: runtime in clock)
    first = home.run_sync(_phase_of(clock, runtime))
    assert first is not None
    aligned = clock.aligned
    frame = np.zeros(FRAME, dtype=np.float32)

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.audio)
            start = len(client.audio)
            for index in range(ALIGN_FRAMES + 10):
                await client.wait_for(
                    lambda due=start + index: len(client.audio) >= due
                )
                await client.send_audio(frame)

    asyncio.run(scenario())
    phase = home.run_sync(_phase_of(clock, runtime))
    if align:
        assert clock.aligned == aligned + 1
        assert phase != first
    else:
        assert clock.aligned == aligned and phase == first


async def _phase_of(clock: MediaClock, runtime: Any) -> int | None:
    return clock.phase_of(runtime)


def _frame(value: float) -> np.ndarray:
    return np.full(FRAME, value, dtype=np.float32)


@pytest.mark.parametrize("speech_at_move", [False, True])
def test_after_a_move_to_a_later_phase_the_extra_frame_goes_at_the_next_pause(
    speech_at_move: bool,
) -> None:
    """A client streaming in real time; the call moves to a later phase, so one read
    comes 25 ms after the last and finds two frames. The older one goes if it is
    silent (or, in speech, at the next pause); speech is never dropped."""
    link = _link()
    out = np.zeros(FRAME, dtype=np.float32)
    played: list[float] = []
    # The move comes after the fifth frame: in a pause, or in the middle of speech.
    stream = [0.0] * 3 + [0.5] * 8 + [0.0] * 10 if speech_at_move else [0.0] * 20
    # Unique values: silence as tiny distinct levels, speech as distinct loud ones.
    values = [
        float(np.float32((index + 1) * 1e-7 if level == 0.0 else level + index * 1e-3))
        for index, level in enumerate(stream)
    ]
    sent = iter(values)
    for _ in range(5):  # in step: a frame arrives, a read takes it
        link.push_audio(_frame(next(sent)).tobytes())
        link.read_into(out)
        played.append(float(out[0]))
    link.moved_later()
    # The longer interval: two frames arrive before the next read.
    link.push_audio(_frame(next(sent)).tobytes())
    for value in sent:
        link.push_audio(_frame(value).tobytes())
        link.read_into(out)
        played.append(float(out[0]))

    assert link.buffer.buffered == 0  # back in step: nothing waits after a read
    dropped = [v for v in values if v not in played]
    assert len(dropped) == 1 and dropped[0] < 1e-3  # one frame, and a silent one
    assert played == [v for v in values if v != dropped[0]][: len(played)]
    if speech_at_move:
        # Not before the speech was over, and not its quiet edge.
        assert values.index(dropped[0]) > len(stream) - 1 - stream[::-1].index(0.5) + 1
    assert link.trimmed_ms == 20
