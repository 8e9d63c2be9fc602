"""Playout trimming: a live stream's backlog after a stall drains back to the target by
dropping silence, never speech (MEDIA_PLAYOUT_TARGET_MS)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from audio.playout import BacklogTrimmer, PlayoutBuffer
from calls.runtime.engine import Engine
from calls.tests.media_client import FRAME, MediaClient
from calls.tests.test_media_socket import media_url, place
from calls.transports.websocket.link import MediaLink
from conftest import LiveServer, Tenant

MS = 16


def speech_frame(index: int) -> np.ndarray:
    """A loud 20 ms frame (about -13 dBFS) that no other frame of a test equals."""
    t = np.arange(FRAME) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t + index) + 1e-4 * index).astype(np.float32)


def silent_frame(index: int) -> np.ndarray:
    """A frame under -50 dBFS, unique by its constant value (about -66 dBFS at most)."""
    return np.full(FRAME, (index + 1) * 1e-6, dtype=np.float32)


def is_silent(frame: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) < 10 ** (-50 / 20)


@dataclass
class Run:
    """What a link did over a run of ticks: the frames it played, its JSON frames."""

    played: list[np.ndarray] = field(default_factory=list)  # whole 20 ms frames only
    messages: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    buffered: list[int] = field(default_factory=list)  # samples queued after each tick
    position: list[int] = field(default_factory=list)  # samples played or dropped
    played_count: list[int] = field(default_factory=list)  # frames played so far

    def of_type(self, kind: str) -> list[tuple[int, dict[str, Any]]]:
        return [(tick, m) for tick, m in self.messages if m["type"] == kind]


def new_link(target_ms: int, run: Run, ticks: list[int]) -> MediaLink:
    return MediaLink(
        send_audio=lambda data: None,
        send_json=lambda payload: run.messages.append((ticks[0], payload)),
        close=lambda code: None,
        capacity_ms=10_000,
        pause_ms=500,
        resume_ms=250,
        target_ms=target_ms,
    )


def drive(
    target_ms: int,
    schedule: list[list[np.ndarray | str]],
) -> tuple[MediaLink, Run]:
    """Tick a link once per schedule entry: push that entry (audio frames, or a mark by
    name), then read 20 ms as the media clock does."""
    run = Run()
    tick = [0]
    link = new_link(target_ms, run, tick)
    out = np.zeros(FRAME, dtype=np.float32)
    for index, items in enumerate(schedule):
        tick[0] = index
        for item in items:
            if isinstance(item, str):
                link.handle_text(f'{{"type": "mark", "name": "{item}"}}')
            else:
                link.push_audio(item.astype("<f4").tobytes())
        count = link.read_into(out)
        assert count in (0, FRAME)  # the tests push whole frames
        if count:
            run.played.append(out.copy())
        run.buffered.append(link.buffer.buffered)
        run.position.append(link.buffer.played_total)
        run.played_count.append(len(run.played))
    return link, run


def hiccup_schedule(
    stream: list[np.ndarray], stall_at: int, stall_ticks: int, tail_ticks: int = 40
) -> list[list[np.ndarray | str]]:
    """A client sending one frame per tick that stalls for ``stall_ticks`` and then
    sends what it captured meanwhile at once."""
    schedule: list[list[np.ndarray | str]] = [[frame] for frame in stream[:stall_at]]
    schedule += [[] for _ in range(stall_ticks)]
    owed = stream[stall_at : stall_at + stall_ticks + 1]
    schedule.append(list(owed))
    schedule += [[frame] for frame in stream[stall_at + stall_ticks + 1 :]]
    schedule += [[] for _ in range(tail_ticks)]
    return schedule


def syllables(
    count: int, *, speech: int, pause: int, first: int = 0
) -> list[np.ndarray]:
    """``count`` runs of ``speech`` loud frames, each followed by ``pause`` quiet ones."""
    frames = []
    index = first
    for _ in range(count):
        for _ in range(speech):
            frames.append(speech_frame(index))
            index += 1
        for _ in range(pause):
            frames.append(silent_frame(index))
            index += 1
    return frames


def dropped_frames(pushed: list[np.ndarray], played: list[np.ndarray]) -> list[int]:
    """Indices of ``pushed`` missing from ``played``; fails unless ``played`` is exactly
    ``pushed`` in order with only those frames left out."""
    missing = []
    at = 0
    for index, frame in enumerate(pushed):
        if at < len(played) and np.array_equal(played[at], frame):
            at += 1
        else:
            missing.append(index)
    assert at == len(played), "a played frame is not a pushed one, or out of order"
    return missing


def test_a_silent_backlog_after_a_stall_drains_to_the_target() -> None:
    stream = syllables(1, speech=20, pause=0) + [
        silent_frame(100 + i) for i in range(80)
    ]
    link, run = drive(60, hiccup_schedule(stream, stall_at=20, stall_ticks=30))

    # After the stall 31 frames came at once (30 left after that tick's read); once the
    # client had gone on in real time for 200 ms, silence was dropped down to 60 ms.
    assert max(run.buffered) == 30 * FRAME
    after_burst = run.buffered.index(30 * FRAME)
    settled = run.buffered[after_burst + 20 : after_burst + 60]
    assert max(settled) <= 60 * MS, settled
    assert link.trimmed_ms >= 400
    missing = dropped_frames(stream, run.played)
    assert len(missing) * 20 == link.trimmed_ms
    assert all(is_silent(stream[i]) for i in missing)


def test_speech_is_never_dropped_and_pauses_keep_a_frame_each_side() -> None:
    # Syllables of 8 loud frames and pauses of 1, 2 and 6 quiet frames, stalled in the
    # middle of a pause: the backlog is mostly speech.
    stream = (
        syllables(6, speech=8, pause=6)
        + syllables(4, speech=8, pause=1, first=500)
        + syllables(4, speech=8, pause=2, first=600)
        + syllables(6, speech=8, pause=6, first=700)
    )
    link, run = drive(60, hiccup_schedule(stream, stall_at=10, stall_ticks=30))

    missing = dropped_frames(stream, run.played)
    assert missing and link.trimmed_ms == 20 * len(missing)
    for index in missing:
        # Only the inside of a pause: the frames on both sides are quiet too.
        assert is_silent(stream[index - 1]) and is_silent(stream[index])
        assert is_silent(stream[index + 1])
    loud = [i for i, frame in enumerate(stream) if not is_silent(frame)]
    assert not set(loud) & set(missing)
    # Every sample of speech was played, in order, sample for sample.
    played_loud = [frame for frame in run.played if not is_silent(frame)]
    assert len(played_loud) == len(loud)
    assert all(
        np.array_equal(a, stream[i]) for a, i in zip(played_loud, loud, strict=True)
    )
    # The backlog behind the stall went pause by pause (four frames from each pause
    # of six, none from the short ones), down to the target.
    assert run.buffered[-45] == 60 * MS, run.buffered


def test_continuous_speech_keeps_its_backlog_whole() -> None:
    stream = [speech_frame(i) for i in range(150)]
    link, run = drive(60, hiccup_schedule(stream, stall_at=20, stall_ticks=30))

    assert link.trimmed_ms == 0
    assert dropped_frames(stream, run.played) == []
    assert len(run.played) == len(stream)


def test_marks_fire_when_the_audio_before_them_has_played_or_been_dropped() -> None:
    stream = syllables(1, speech=10, pause=0) + [
        silent_frame(50 + i) for i in range(60)
    ]
    stream += syllables(1, speech=10, pause=10, first=200)
    schedule = hiccup_schedule(stream, stall_at=10, stall_ticks=30)
    # Marks after the first syllable, inside the silence sent at once after the stall
    # (which is dropped), and just before the second syllable.
    positions = {"after-hello": 10, "in-the-silence": 25, "before-world": 70}
    schedule[9].append("after-hello")
    burst = schedule[40]
    schedule[40] = [*burst[:15], "in-the-silence", *burst[15:]]
    world = next(
        tick
        for tick, items in enumerate(schedule)
        if any(item is stream[70] for item in items)
    )
    schedule[world].insert(0, "before-world")
    link, run = drive(60, schedule)

    missing = set(dropped_frames(stream, run.played))
    assert 24 in missing, "the audio just before the mark was not dropped"
    assert link.trimmed_ms == 20 * len(missing)
    marks = {m["name"]: (tick, m["playedMs"]) for tick, m in run.of_type("mark")}
    assert set(marks) == set(positions)
    for name, position in positions.items():
        tick, played_ms = marks[name]
        # Due on the very tick playout (playing or dropping) reached the mark ...
        assert run.position[tick] >= position * FRAME > run.position[tick - 1], name
        # ... and playedMs counts the audio the peer got before it: a mark inside
        # dropped silence sits where the next kept frame starts.
        kept = [i for i in range(position) if i not in missing]
        assert played_ms == len(kept) * 20 == run.played_count[tick] * 20, name


def test_buffer_reports_count_the_trimmed_audio() -> None:
    stream = syllables(1, speech=20, pause=0) + [
        silent_frame(100 + i) for i in range(80)
    ]
    link, run = drive(60, hiccup_schedule(stream, stall_at=20, stall_ticks=30))

    reports = [m for _, m in run.of_type("buffer")]
    assert reports[-1]["trimmedMs"] == link.trimmed_ms > 0
    assert reports[0]["trimmedMs"] == 0
    trimmed = [m["trimmedMs"] for m in reports]
    assert trimmed == sorted(trimmed)


def test_trimming_is_off_when_the_target_is_zero() -> None:
    stream = syllables(1, speech=20, pause=0) + [
        silent_frame(100 + i) for i in range(80)
    ]
    link, run = drive(0, hiccup_schedule(stream, stall_at=20, stall_ticks=30))

    assert link.trimmed_ms == 0
    assert dropped_frames(stream, run.played) == []
    # The stall's 600 ms stay queued for as long as the client keeps streaming.
    assert run.buffered[-41] == 30 * FRAME


def test_audio_queued_ahead_on_purpose_plays_as_sent() -> None:
    # A TTS reply with long pauses, sent as the SDK does: bursts up to pauseMs, then
    # nothing until the buffer is back at resumeMs.
    reply = syllables(12, speech=15, pause=25)
    schedule: list[list[np.ndarray | str]] = []
    run_level = 0
    sent = 0
    while sent < len(reply) or run_level:
        burst: list[np.ndarray | str] = []
        if run_level <= 250 // 20:
            while sent < len(reply) and run_level < 500 // 20:
                burst.append(reply[sent])
                sent += 1
                run_level += 1
        schedule.append(burst)
        run_level = max(run_level - 1, 0)
    link, run = drive(60, schedule)
    assert min(run.buffered[:200]) > 60 * MS  # well past the target all along
    assert link.trimmed_ms == 0
    assert dropped_frames(reply, run.played) == []

    # All of it at once, as examples/play_and_record.py sends a file.
    at_once: list[list[np.ndarray | str]] = [[*reply]]
    link, run = drive(60, at_once + [[] for _ in range(len(reply))])
    assert link.trimmed_ms == 0
    assert dropped_frames(reply, run.played) == []


def test_the_trimmer_stops_at_the_target_and_its_limit_across_the_ring() -> None:
    # A ring that wraps in the middle of frame 23, which is loud.
    buffer = PlayoutBuffer(23 * FRAME + 100)
    trimmer = BacklogTrimmer(buffer, target=60 * MS, frame=FRAME, hold=2, per_tick=3)
    stream = [silent_frame(i) for i in range(60)]
    stream[23] = speech_frame(23)
    out = np.zeros(FRAME, dtype=np.float32)
    played, dropped = [], []
    schedule = [[stream[0]], stream[1:21], *([frame] for frame in stream[21:])]
    for frames in schedule:
        for frame in frames:
            buffer.write(frame)
        if buffer.read_into(out):
            played.append(out.copy())
        if buffer.buffered > trimmer.target:
            dropped.append(trimmer.tick())
        else:
            trimmer.reset()

    assert buffer.buffered == 60 * MS
    while buffer.read_into(out):
        played.append(out.copy())
    missing = dropped_frames(stream, played)
    assert max(dropped) == 3 * FRAME
    assert buffer.trimmed_total == sum(dropped) == len(missing) * FRAME
    assert not {22, 23, 24} & set(missing)


@pytest.mark.usefixtures("fast_network")
def test_after_a_stall_the_echo_comes_back_within_the_target_and_whole(
    engine: Engine, tenant: Tenant, asgi_server: LiveServer, settings: Any
) -> None:
    """Over a real socket, with the client's clock slaved to the media clock: it
    captures a frame for every frame it hears, so latency is counted in frames.
    Speech-like syllables (100 ms, then 100 ms of silence), a 600 ms stall whose
    captured silence then goes out at once, and more syllables."""
    settings.MEDIA_PLAYOUT_TARGET_MS = 60
    session_id, call_id = place(tenant.client())
    url = media_url(asgi_server, session_id, call_id)
    before = syllables(5, speech=5, pause=5)  # 1 s
    stall = [silent_frame(300 + i) for i in range(30)]  # 600 ms
    after = syllables(10, speech=5, pause=5, first=400)  # 2 s
    stream = before + stall + after
    echo_frames = 5  # the echo peer answers 100 ms (five ticks) later

    late: list[int] = []  # frames the client itself was behind when it sent each

    async def scenario() -> tuple[list[np.ndarray], int, list[dict[str, Any]]]:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.audio)
            start = len(client.audio)  # frame i is captured when start + i were heard
            for index, frame in enumerate(stream):
                due = start + index
                if len(before) <= index < len(before) + len(stall):
                    due = start + len(before) + len(stall)  # sent after the stall
                await client.wait_for(lambda due=due: len(client.audio) >= due)
                late.append(len(client.audio) - due)
                await client.send_audio(frame)
            await client.wait_for(
                lambda: len(client.audio) >= start + len(stream) + 40, timeout=10
            )
            await client.send_json({"type": "mark", "name": "end"})
            await client.wait_for(lambda: client.of_type("mark"))
            return [frame for _, frame in client.audio], start, client.of_type("buffer")

    received, start, buffers = asyncio.run(scenario())
    frames = np.array(received)

    def heard_at(frame: np.ndarray) -> int:
        found = np.flatnonzero((frames == frame).all(axis=1))
        assert len(found) == 1, "not echoed exactly once, whole and frame-aligned"
        return int(found[0])

    loud = [i for i, frame in enumerate(stream) if not is_silent(frame)]
    # Every frame of speech came back, sample for sample, in order.
    arrivals = [heard_at(stream[i]) for i in loud]
    assert arrivals == sorted(arrivals)
    # Frames from capture to the echo's arrival, less the echo peer's five: 0 when the
    # frame caught the next tick.
    latency = {
        i: at - (start + i) - echo_frames for i, at in zip(loud, arrivals, strict=True)
    }
    first_after = len(before) + len(stall)
    # A client that falls behind the media clock itself (a busy machine) leaves that
    # much more queued: the bounds below allow for what it did.
    slack_before, slack_after = max(late[:first_after]), max(late[first_after:])
    assert max(latency[i] for i in loud if i < len(before)) <= 3 + slack_before
    # Right after the stall, speech waits behind what the stall left queued: the
    # first 200 ms of it are left alone, the rest of its silence is dropped ...
    assert 11 <= latency[first_after] < 30 + slack_after, latency
    # ... and then the pauses, one after another: back at the target (three frames)
    # and the tick for the second half of what followed.
    settled = [i for i in loud if i >= first_after + len(after) // 2]
    assert max(latency[i] for i in settled) <= 3 + 2 + slack_after, (latency, late)
    assert buffers[-1]["trimmedMs"] >= 20 * 20, buffers[-1]
