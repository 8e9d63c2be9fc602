"""The media socket client against the simulator's echo peer (100 ms later, exact)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from switchboard_sdk import (
    AsyncSwitchboard,
    AudioFrame,
    BufferStatus,
    CallStateChanged,
    Ended,
    Mark,
    MediaEvent,
    MediaSocket,
    Switchboard,
)
from switchboard_sdk.audio import FRAME_BYTES, chirp, to_f32le

from switchboard_sdk_tests.conftest import active_call


def found(heard: bytes | bytearray, sent: bytes) -> bool:
    """``sent`` came back whole and sample-aligned."""
    index = bytes(heard).find(sent)
    return index >= 0 and index % 4 == 0


async def read_until(
    media: MediaSocket,
    done: Callable[[], bool],
    into: list[MediaEvent],
    timeout: float = 10.0,
) -> None:
    """Collect events into ``into`` until ``done()``."""
    async with asyncio.timeout(timeout):
        async for event in media:
            into.append(event)
            if done():
                return


def audio_of(events: list[MediaEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, AudioFrame))


def test_a_chirp_comes_back_sample_exact_and_its_mark_when_played(
    sb: Switchboard, async_sb: AsyncSwitchboard
) -> None:
    session_id, call_id = active_call(sb)
    signal = to_f32le(chirp(1.0))

    async def scenario() -> None:
        async with async_sb, async_sb.media(session_id, call_id) as media:
            assert media.ready is not None
            assert media.ready.media == {
                "direction": "bidirectional",
                "encoding": "pcm_f32le",
                "sampleRate": 16000,
                "channels": 1,
                "frameMs": 20,
            }
            assert media.ready.call["callId"] == call_id
            await media.send_audio(signal)
            played = await media.mark("chirp")
            events: list[MediaEvent] = []
            await read_until(
                media, lambda: played.done() and found(audio_of(events), signal), events
            )
            assert played.result() == Mark("chirp", played_ms=1000)
            assert Mark("chirp", played_ms=1000) in events  # also as an event
            frames = [e for e in events if isinstance(e, AudioFrame)]
            assert {len(frame.data) for frame in frames} == {FRAME_BYTES}
            assert len(frames[0].samples) == 320

            # Call state changes and the end arrive too; then iteration stops.
            await async_sb.calls.mute(session_id, call_id)
            await async_sb.calls.end(session_id, call_id)
            rest = [event async for event in media]
            changes = [e for e in rest if isinstance(e, CallStateChanged)]
            assert any(change.call["audioMuted"] for change in changes)
            ended = [e for e in rest if isinstance(e, Ended)]
            assert ended and ended[0].call["endReason"] == "completed"
            assert media.ended and media.close_code == 1000

    asyncio.run(scenario())


def test_clear_drops_the_buffered_audio_and_stops_the_send_in_progress(
    sb: Switchboard, async_sb: AsyncSwitchboard
) -> None:
    session_id, call_id = active_call(sb)
    speech = [0.25] * (3 * 16000)

    async def scenario() -> None:
        async with async_sb, async_sb.media(session_id, call_id) as media:
            sending = asyncio.create_task(media.send_audio(speech))
            events: list[MediaEvent] = []
            # The server says its buffer is at pauseMs: audio is waiting there.
            await read_until(
                media,
                lambda: any(
                    isinstance(e, BufferStatus) and e.buffered_ms >= e.pause_ms
                    for e in events
                ),
                events,
            )
            pending = await media.mark("end-of-utterance")
            await media.clear()
            async with asyncio.timeout(2):
                await sending  # returns early: the rest of the speech is dropped
            assert await pending == Mark("end-of-utterance", cleared=True)

            after: list[MediaEvent] = []
            await read_until(
                media, lambda: any(isinstance(e, BufferStatus) for e in after), after
            )
            assert [e.buffered_ms for e in after if isinstance(e, BufferStatus)] == [0]
            # The peer hears silence again: its echo goes quiet.
            await read_until(
                media,
                lambda: audio_of(after[-15:]) == bytes(15 * FRAME_BYTES),
                after,
            )
            # Far less than the 3 s given was played.
            check = await media.mark("after-clear")
            played = await check
            assert played.played_ms is not None and played.played_ms < 2000
            assert not media.errors

    asyncio.run(scenario())


def test_fifteen_seconds_sent_at_once_are_paced_by_buffer_reports(
    sb: Switchboard, async_sb: AsyncSwitchboard
) -> None:
    session_id, call_id = active_call(sb)
    signal = to_f32le(chirp(15.0, 200.0, 4000.0, amplitude=0.3))

    async def scenario() -> None:
        async with async_sb, async_sb.media(session_id, call_id) as media:
            events: list[MediaEvent] = []
            reader = asyncio.create_task(
                read_until(media, lambda: found(audio_of(events), signal), events, 30)
            )
            await media.send_audio(signal)  # as fast as the server lets it
            played = await media.mark("all")
            assert (await played).played_ms == 15000
            await reader

            # No overflow, no error of any kind.
            assert media.errors == []
            levels = [e.buffered_ms for e in events if isinstance(e, BufferStatus)]
            # The client paused when told (at 500 ms), well before the 10 s capacity...
            assert max(levels) < 2000, max(levels)
            # ...and went on when the buffer was back at resumeMs, many times over.
            paused = [i for i, level in enumerate(levels) if level >= 500]
            resumed = [i for i, level in enumerate(levels) if level <= 250]
            assert len(paused) >= 10 and resumed[-1] > paused[0]
            assert media.pressure.max_reported_ms == max(levels)

    asyncio.run(scenario())
