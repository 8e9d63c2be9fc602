"""The media socket opens where the call lives: the snapshot's ``mediaUrl``, or where a
bridged socket's ``ready`` says (``reconnect.mediaUrl``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from switchboard_sdk import AsyncSwitchboard, AudioFrame, MediaSocket, Switchboard
from switchboard_sdk._http import media_socket_url
from switchboard_sdk.audio import chirp, to_f32le
from websockets.asyncio.server import ServerConnection, serve

from conftest import LiveServer, Tenant
from switchboard_sdk_tests.conftest import active_call

NOTHING_LISTENS = "http://127.0.0.1:9"  # the discard port: nothing answers there


def found(heard: bytes, sent: bytes) -> bool:
    index = heard.find(sent)
    return index >= 0 and index % 4 == 0


async def echoes(media: MediaSocket, signal: bytes, timeout: float = 10.0) -> bool:
    """Send ``signal`` and read until it comes back whole from the echo peer."""
    await media.send_audio(signal)
    heard = bytearray()
    async with asyncio.timeout(timeout):
        async for event in media:
            if isinstance(event, AudioFrame):
                heard += event.data
                if found(bytes(heard), signal):
                    return True
    return False


def test_the_url_comes_from_the_snapshot_else_from_the_ids() -> None:
    base = "https://sb.example.com"
    path = "/api/v1/sessions/s-1/calls/c-1/media"
    hosted = "wss://media-2.example.com" + path
    snapshot = {"sessionId": "s-1", "callId": "c-1"}
    assert media_socket_url(base, {**snapshot, "mediaUrl": hosted}) == hosted
    assert media_socket_url(base, snapshot) == "wss://sb.example.com" + path
    assert media_socket_url(base, "s-1", "c-1") == "wss://sb.example.com" + path
    with pytest.raises(TypeError):
        media_socket_url(base, "s-1")


def test_the_pipecat_transport_connects_where_the_snapshot_says() -> None:
    from switchboard_sdk.pipecat import SwitchboardTransport

    client = Switchboard("https://sb.example.com", "sb_test_x")
    path = "/api/v1/sessions/s-1/calls/c-1/media"
    hosted = "wss://media-2.example.com" + path
    snapshot = {"sessionId": "s-1", "callId": "c-1", "mediaUrl": hosted}
    by_snapshot = SwitchboardTransport.for_call(client, snapshot)
    by_ids = SwitchboardTransport.for_call(client, "s-1", "c-1")
    # Pipecat's client session keeps the address it will dial.
    assert by_snapshot._session._uri == hosted
    assert by_ids._session._uri == "wss://sb.example.com" + path


def test_audio_arriving_before_the_pipeline_starts_is_left_out() -> None:
    """The socket connects during the pipeline's setup and the call's audio comes at
    once: before the transport has started, a frame must not break its receive loop."""
    from pipecat.frames.frames import InputAudioRawFrame
    from switchboard_sdk.pipecat import SwitchboardInputTransport, SwitchboardTransport

    transport = SwitchboardTransport("ws://127.0.0.1:9/media", "sb_test_x")
    source = transport.input()
    assert isinstance(source, SwitchboardInputTransport)
    frame = InputAudioRawFrame(audio=b"\0\0" * 320, sample_rate=16_000, num_channels=1)
    asyncio.run(source.push_audio_frame(frame))  # raised AttributeError before
    assert not source._started


def test_a_socket_opened_with_the_snapshot_connects_to_its_media_url(
    live: LiveServer, sb: Switchboard, tenant: Tenant
) -> None:
    session_id, call_id = active_call(sb)
    call = sb.calls.get(session_id, call_id)
    assert call["mediaUrl"] == (
        live.ws_url + f"/api/v1/sessions/{session_id}/calls/{call_id}/media"
    )
    signal = to_f32le(chirp(0.5))

    async def scenario() -> None:
        # A client whose base URL leads nowhere: only mediaUrl can work.
        elsewhere = AsyncSwitchboard(NOTHING_LISTENS, tenant.test_key)
        async with elsewhere, elsewhere.media(call) as media:
            assert media.url == call["mediaUrl"]
            assert media.ready is not None and media.ready.reconnect_url is None
            assert await echoes(media, signal)

    asyncio.run(scenario())


async def bridged_process(reconnect_to: str, seen: list[str]) -> tuple[Any, str]:
    """A stand-in for a server process the call is not hosted by: it answers ``ready``
    with ``reconnect.mediaUrl`` and then stays quiet, as a bridge with no audio yet."""

    async def handler(ws: ServerConnection) -> None:
        seen.append(ws.request.headers.get("Authorization", "") if ws.request else "")
        ready = {
            "type": "ready",
            "media": {"sampleRate": 16000},
            "call": {"mediaUrl": reconnect_to},
            "reconnect": {"mediaUrl": reconnect_to, "reason": "bridged"},
        }
        await ws.send(json.dumps(ready))
        await ws.wait_closed()

    server = await serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://127.0.0.1:{port}/api/v1/sessions/s/calls/c/media"


def test_a_socket_told_it_is_bridged_moves_to_the_calls_host(
    live: LiveServer, sb: Switchboard, tenant: Tenant
) -> None:
    session_id, call_id = active_call(sb)
    host_url = sb.calls.get(session_id, call_id)["mediaUrl"]
    signal = to_f32le(chirp(0.5))

    async def scenario() -> None:
        seen: list[str] = []
        server, other_url = await bridged_process(host_url, seen)
        async with server:
            media = MediaSocket(other_url, tenant.test_key)
            async with media:
                assert media.url == host_url
                assert media.ready is not None
                assert media.ready.call["callId"] == call_id  # the host's own ready
                assert media.ready.reconnect_url is None
                assert await echoes(media, signal)
        assert seen == [f"Bearer {tenant.test_key}"]

    asyncio.run(scenario())


def test_a_socket_stays_bridged_when_it_cannot_reach_the_host(tenant: Tenant) -> None:
    unreachable = "ws://127.0.0.1:9/api/v1/sessions/s/calls/c/media"

    async def scenario() -> None:
        server, other_url = await bridged_process(unreachable, [])
        media = MediaSocket(other_url, tenant.test_key, open_timeout=5)
        async with server, media:
            assert media.url == other_url
            assert media.ready is not None
            assert media.ready.reconnect_url == unreachable
            assert media.close_code is None  # still open, bridged

    asyncio.run(scenario())


def test_following_can_be_turned_off(tenant: Tenant) -> None:
    async def scenario() -> None:
        server, other_url = await bridged_process("ws://127.0.0.1:9/x", [])
        media = MediaSocket(other_url, tenant.test_key, follow_reconnect=False)
        async with server, media:
            assert media.url == other_url
            assert media.ready is not None
            assert media.ready.reconnect_url == "ws://127.0.0.1:9/x"

    asyncio.run(scenario())
