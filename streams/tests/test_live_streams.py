"""Dial-out streams over real sockets: the call's audio reaches a customer's server."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import numpy as np
import pytest

from audio.resample import StreamResampler
from calls.models import Call, CallState
from calls.runtime.clock import MAX_CATCH_UP_S
from calls.tests.media_client import MediaClient, chirp, find
from conftest import LiveServer, Tenant
from events.models import Event
from streams.formats import FORMATS
from streams.models import Stream, StreamState
from streams.signing import verify_handshake_signature
from streams.tests.conftest import in_thread, place, streams_url
from streams.tests.receiver import Connection, Receiver

pytestmark = pytest.mark.usefixtures("engine", "fast_streams")


def media_url(server: LiveServer, session_id: str, call_id: str) -> str:
    return f"{server.ws_url}/api/v1/sessions/{session_id}/calls/{call_id}/media"


async def create_stream(
    tenant: Tenant, session_id: str, call_id: str, **options: Any
) -> dict[str, Any]:
    response = await in_thread(
        tenant.client().post, streams_url(session_id, call_id), options, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["data"]


async def stream_row(stream_id: str) -> Stream:
    return await in_thread(Stream.objects.get, public_id=stream_id)


async def wait_state(stream_id: str, state: str, timeout: float = 10.0) -> Stream:
    deadline = time.monotonic() + timeout
    while True:
        stream = await stream_row(stream_id)
        if stream.state == state:
            return stream
        if time.monotonic() > deadline:
            raise AssertionError(f"stream is {stream.state}, not {state}")
        await asyncio.sleep(0.02)


async def wait_row(stream_id: str, predicate: Any, timeout: float = 5.0) -> Stream:
    deadline = time.monotonic() + timeout
    while True:
        stream = await stream_row(stream_id)
        if predicate(stream):
            return stream
        if time.monotonic() > deadline:
            raise AssertionError(f"stream never matched: {stream.__dict__}")
        await asyncio.sleep(0.02)


async def events_of(stream_id: str, kind: str) -> list[dict[str, Any]]:
    def read() -> list[dict[str, Any]]:
        return [
            event.data
            for event in Event.objects.filter(type=kind).order_by("id")
            if event.data.get("streamId") == stream_id
        ]

    return await in_thread(read)


def lag_of(reference: np.ndarray, signal: np.ndarray) -> int:
    """Where ``reference`` starts in ``signal`` (by cross-correlation)."""
    size = 1 << int(np.ceil(np.log2(len(signal) + len(reference))))
    spectrum = np.fft.rfft(signal, size) * np.conj(np.fft.rfft(reference, size))
    return int(np.argmax(np.fft.irfft(spectrum, size)[: len(signal)]))


def snr_db(reference: np.ndarray, received: np.ndarray) -> float:
    error = reference - received
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum(error**2), 1e-20)))


# ---------------------------------------------------------------- audio


def test_a_both_stream_carries_the_chirp_outbound_and_its_echo_100_ms_later_inbound(
    tenant: Tenant, asgi_server: LiveServer
) -> None:
    session_id, call_id, _ = place(tenant.client())
    signal = chirp(0.5)

    async def scenario() -> None:
        async with Receiver() as rx:
            stream = await create_stream(
                tenant,
                session_id,
                call_id,
                url=rx.url,
                channel="both",
                format="f32_16000",
            )
            assert stream["state"] in ("pending", "connecting", "streaming")
            connection = await rx.connection()
            await rx.wait_for(lambda: connection.events("media"))
            async with MediaClient(
                media_url(asgi_server, session_id, call_id), tenant.test_key
            ) as client:
                await client.wait_for(lambda: client.messages)
                # All at once: the playout buffer paces it, so no tick of the chirp
                # can go missing however busy the machine is.
                await client.send_audio(signal)
                await rx.wait_for(
                    lambda: find(connection.track("inbound", "f32_16000"), signal) >= 0,
                    timeout=10,
                )
            outbound = connection.track("outbound", "f32_16000")
            inbound = connection.track("inbound", "f32_16000")
            sent_at = find(outbound, signal)
            heard_at = find(inbound, signal)
            # Sample-exact on both tracks, and aligned by timestamp: the echo peer
            # answers exactly 100 ms (1600 samples) after it hears.
            assert sent_at >= 0 and heard_at - sent_at == 1600
            start = connection.events("start")[0]
            assert start["start"]["tracks"] == ["inbound", "outbound"]
            assert connection.kinds()[:2] == ["connected", "start"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("fmt", "minimum_snr_db"),
    [
        ("f32_16000", None),
        ("pcm16_16000", None),
        ("pcm16_24000", 30.0),
        ("mulaw_8000", 25.0),
    ],
)
def test_each_format_decodes_back_to_the_audio_sent(
    tenant: Tenant, asgi_server: LiveServer, fmt: str, minimum_snr_db: float | None
) -> None:
    session_id, call_id, _ = place(tenant.client())
    signal = chirp(0.6, amplitude=0.4)
    wire = FORMATS[fmt]

    async def scenario() -> None:
        async with Receiver() as rx:
            await create_stream(
                tenant, session_id, call_id, url=rx.url, channel="outbound", format=fmt
            )
            connection = await rx.connection()
            await rx.wait_for(lambda: connection.events("media"))
            async with MediaClient(
                media_url(asgi_server, session_id, call_id), tenant.test_key
            ) as client:
                await client.wait_for(lambda: client.messages)
                # All at once: the playout buffer paces it, so no tick of the chirp
                # can go missing however busy the machine is.
                await client.send_audio(signal)
                # It plays at real time; then the resampler's lag, then some margin.
                await asyncio.sleep(len(signal) / 16000 + 0.6)
            media = connection.events("media")
            assert {m["media"]["track"] for m in media} == {"outbound"}
            assert all(
                len(base64.b64decode(m["media"]["payload"])) == wire.chunk_bytes
                for m in media
            )
            received = connection.track("outbound", fmt)
            if wire.rate != 16000:
                back = StreamResampler(wire.rate, 16000)
                received = np.concatenate([back.process(received), back.flush()])
            if minimum_snr_db is None:
                at = lag_of(signal, received)
                error = np.abs(received[at : at + len(signal)] - signal).max()
                # Float32 is exact; 16-bit PCM is within one quantisation step.
                assert error <= (0 if fmt == "f32_16000" else 1 / 32768 + 1e-7), error
            else:
                at = lag_of(signal, received)
                assert snr_db(signal, received[at : at + len(signal)]) > minimum_snr_db

    asyncio.run(scenario())


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_leaves_paced_at_20_ms(
    tenant: Tenant, asgi_server: LiveServer, fmt: str
) -> None:
    """Chunks reach the receiver one per 20 ms of the call in every format, not in
    bursts (a resampled format used to arrive five at once every 100 ms: gaps of 0 ms
    then 100 ms). A busy machine's late ticks jitter the gaps and sometimes send two
    back to back, so the test counts bursts instead of timing every gap."""
    session_id, call_id, _ = place(tenant.client())

    async def scenario() -> list[float]:
        async with Receiver() as rx:
            await create_stream(
                tenant, session_id, call_id, url=rx.url, channel="outbound", format=fmt
            )
            connection = await rx.connection()
            await rx.wait_for(lambda: len(connection.events("media")) >= 160, 15)
            return [
                at
                for at, message in list(connection.messages)
                if message.get("event") == "media"
            ]

    arrivals = asyncio.run(scenario())[10:160]  # past the start-up
    gaps_ms = np.diff(arrivals) * 1000
    shown = np.round(gaps_ms, 1).tolist()
    assert 12 <= float(np.median(gaps_ms)) <= 30, shown
    assert float(np.mean(gaps_ms < 5)) <= 0.25, shown  # bursts were 80 % of the gaps


# ---------------------------------------------------------------- twoway


def pcm16_chunks(samples: np.ndarray) -> list[str]:
    wire = FORMATS["pcm16_16000"]
    return [
        base64.b64encode(wire.encode(samples[i : i + 320])).decode()
        for i in range(0, len(samples), 320)
    ]


def test_a_twoway_bot_is_heard_by_the_peer_and_its_mark_comes_back_once_played(
    tenant: Tenant, asgi_server: LiveServer
) -> None:
    session_id, call_id, _ = place(tenant.client())
    speech = chirp(0.5, amplitude=0.3)
    quantised = FORMATS["pcm16_16000"].decode(FORMATS["pcm16_16000"].encode(speech))
    sent: dict[str, float] = {}

    async def bot(connection: Connection) -> None:
        # Talk as soon as the stream starts: half a second at once, then a mark.
        while not connection.events("start"):
            await asyncio.sleep(0.005)
        sent["at"] = time.monotonic()
        for payload in pcm16_chunks(speech):
            await connection.send({"event": "media", "media": {"payload": payload}})
        await connection.send({"event": "mark", "mark": {"name": "greeting"}})

    async def scenario() -> None:
        async with MediaClient(
            media_url(asgi_server, session_id, call_id), tenant.test_key
        ) as client:
            await client.wait_for(lambda: client.messages)
            async with Receiver(bot) as rx:
                stream = await create_stream(
                    tenant, session_id, call_id, url=rx.url, type="twoway"
                )
                connection = await rx.connection()
                # The peer (an echo) hears the bot and says it back: the live socket
                # gets it, and so does the bot, on its inbound track.
                await client.wait_for(
                    lambda: find(client.received(), quantised) >= 0, timeout=10
                )
                marks = await rx.wait_for(lambda: connection.events("mark"))
                mark_at = next(
                    t for t, m in connection.messages if m["event"] == "mark"
                )
                assert marks[0]["mark"] == {"name": "greeting"}
                # Played, not just received: half a second of media-clock time. After
                # a stall the clock replays missed ticks back to back (up to
                # MAX_CATCH_UP_S), so wall-clock time may show up to that much less.
                assert mark_at - sent["at"] >= 0.48 - MAX_CATCH_UP_S
                await rx.wait_for(
                    lambda: (
                        find(connection.track("inbound", "pcm16_16000"), quantised) >= 0
                    )
                )
                # 25 chunks of 20 ms, counted (and written every few seconds).
                await wait_row(
                    stream["streamId"], lambda row: row.frames_received == 25
                )

    asyncio.run(scenario())


def test_clear_drops_the_bots_audio_at_once_and_answers_its_marks(
    tenant: Tenant, asgi_server: LiveServer
) -> None:
    session_id, call_id, _ = place(tenant.client())
    speech = np.full(3 * 16000, 0.25, dtype=np.float32)
    cleared: dict[str, float] = {}

    async def bot(connection: Connection) -> None:
        while not connection.events("start"):
            await asyncio.sleep(0.005)
        for payload in pcm16_chunks(speech):
            await connection.send({"event": "media", "media": {"payload": payload}})
        await connection.send({"event": "mark", "mark": {"name": "long-answer"}})
        await asyncio.sleep(0.4)
        cleared["at"] = time.monotonic()
        await connection.send({"event": "clear", "stream_id": "ignored-if-absent"})
        await connection.send({"event": "clear"})

    async def scenario() -> None:
        async with MediaClient(
            media_url(asgi_server, session_id, call_id), tenant.test_key
        ) as client:
            await client.wait_for(lambda: client.messages)
            async with Receiver(bot) as rx:
                stream = await create_stream(
                    tenant, session_id, call_id, url=rx.url, type="twoway"
                )
                connection = await rx.connection()
                marks = await rx.wait_for(lambda: connection.events("mark"), timeout=6)
                mark_at = next(
                    t for t, m in connection.messages if m["event"] == "mark"
                )
                assert marks[0]["mark"] == {"name": "long-answer", "cleared": True}
                assert mark_at - cleared["at"] < 0.2
                await asyncio.sleep(0.5)
                late = [f for t, f in client.audio if t > cleared["at"] + 0.2]
                assert late and not any(frame.any() for frame in late)
                heard = [f for t, f in client.audio if t < cleared["at"]]
                assert any(frame.any() for frame in heard)
                # The clear naming another stream was refused and counted, not obeyed.
                row = await wait_row(
                    stream["streamId"], lambda row: row.protocol_errors == 1
                )
                assert "for another stream" in row.last_error

    asyncio.run(scenario())


# ---------------------------------------------------------------- lifecycle


def dead_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}/nobody-home"


def test_a_dead_url_is_retried_then_fails_with_call_stream_failed(
    tenant: Tenant, settings: Any
) -> None:
    session_id, call_id, _ = place(tenant.client())

    async def scenario() -> None:
        async with Receiver(refuse_with=503) as rx:
            refused = await create_stream(tenant, session_id, call_id, url=rx.url)
            dead = await create_stream(tenant, session_id, call_id, url=dead_url())
            for stream in (refused, dead):
                row = await wait_state(stream["streamId"], StreamState.FAILED)
                assert row.reason == "connect_failed"
                (failed,) = await events_of(stream["streamId"], "call.stream.failed")
                assert failed["reason"] == "connect_failed" and failed["error"]
                assert not await events_of(stream["streamId"], "call.stream.started")
            assert rx.attempts == settings.STREAM_CONNECT_ATTEMPTS
            row = await stream_row(refused["streamId"])
            assert "HTTP 503" in row.last_error
            call = await in_thread(Call.objects.get, public_id=call_id)
            assert call.state == CallState.ACTIVE

    asyncio.run(scenario())


def test_reconnect_opens_again_with_a_fresh_start_and_continuing_timestamps(
    tenant: Tenant,
) -> None:
    session_id, call_id, _ = place(tenant.client())

    async def drop_once(connection: Connection) -> None:
        if connection is rx_holder[0].connections[0]:
            while len(connection.events("media")) < 10:
                await asyncio.sleep(0.005)
            await connection.ws.close(1011, "bot restarting")

    rx_holder: list[Receiver] = []

    async def scenario() -> None:
        async with Receiver(drop_once) as rx:
            rx_holder.append(rx)
            stream = await create_stream(
                tenant, session_id, call_id, url=rx.url, onDisconnect="reconnect"
            )
            first = await rx.connection(0)
            second = await rx.connection(1)
            await rx.wait_for(lambda: len(second.events("media")) >= 5)
            assert second.kinds()[:2] == ["connected", "start"]
            assert first.events("start")[0]["start"]["reconnect"] is False
            assert second.events("start")[0]["start"]["reconnect"] is True
            assert second.events("connected")[0]["sequence_number"] == 1
            last = first.events("media")[-1]["media"]["timestamp"]
            resumed = second.events("media")[0]["media"]["timestamp"]
            assert resumed > last and resumed % 20 == 0
            # The timestamps count call media, gap included: they follow the wall clock.
            last_at = max(t for t, m in first.messages if m["event"] == "media")
            resumed_at = next(t for t, m in second.messages if m["event"] == "media")
            assert abs((resumed - last) - (resumed_at - last_at) * 1000) < 80
            assert second.events("media")[0]["media"]["chunk"] == 1
            row = await wait_row(
                stream["streamId"], lambda row: row.state == StreamState.STREAMING
            )
            assert row.reconnects == 1
            await in_thread(
                tenant.client().delete,
                f"{streams_url(session_id, call_id)}/{stream['streamId']}",
            )
            await asyncio.wait_for(second.closed.wait(), 6)
            # Every 20 ms of the stream's life was either sent or (the gap, what the
            # first connection never took) counted as dropped.
            row = await wait_state(stream["streamId"], StreamState.STOPPED)
            final = second.events("media")[-1]["media"]["timestamp"]
            assert row.frames_sent + row.frames_dropped == final // 20 + 1
            assert row.frames_dropped >= (resumed - last) // 20 - 1
            started = await events_of(stream["streamId"], "call.stream.started")
            assert [e["reason"] for e in started] == ["connected", "reconnected"]
            assert [e["reconnect"] for e in started] == [False, True]

    asyncio.run(scenario())


def test_on_disconnect_hangup_ends_the_call_and_continue_does_not(
    tenant: Tenant,
) -> None:
    async def hang_up(connection: Connection) -> None:
        while not connection.events("media"):
            await asyncio.sleep(0.005)
        await connection.ws.close()

    async def scenario(on_disconnect: str) -> tuple[Stream, Call]:
        session_id, call_id, _ = await in_thread(place, tenant.client())
        async with Receiver(hang_up) as rx:
            stream = await create_stream(
                tenant, session_id, call_id, url=rx.url, onDisconnect=on_disconnect
            )
            row = await wait_state(stream["streamId"], StreamState.STOPPED)
            await asyncio.sleep(0.3)
            return row, await in_thread(Call.objects.get, public_id=call_id)

    row, call = asyncio.run(scenario("continue"))
    assert (
        row.reason == "remote_closed"
        and "closed the connection (1000" in row.last_error
    )
    assert call.state == CallState.ACTIVE
    row, call = asyncio.run(scenario("hangup"))
    assert row.reason == "remote_closed"
    assert call.state == CallState.ENDED and call.end_reason == "completed"


def test_delete_and_call_end_send_stop_and_close(tenant: Tenant) -> None:
    session_id, call_id, _ = place(tenant.client())
    api = tenant.client()

    async def scenario() -> None:
        async with Receiver() as rx:
            deleted = await create_stream(tenant, session_id, call_id, url=rx.url)
            ended = await create_stream(tenant, session_id, call_id, url=rx.url)
            await rx.wait_for(
                lambda: (
                    len(rx.connections) == 2
                    and all(c.events("media") for c in rx.connections)
                )
            )
            by_stream = {c.events("start")[0]["stream_id"]: c for c in rx.connections}
            response = await in_thread(
                api.delete, f"{streams_url(session_id, call_id)}/{deleted['streamId']}"
            )
            assert response.status_code == 200, response.content
            body = response.json()["data"]
            assert body["state"] == "stopped" and body["reason"] == "requested"
            first = by_stream[deleted["streamId"]]
            await asyncio.wait_for(first.closed.wait(), 6)
            assert first.kinds()[-1] == "stop" and first.close_code == 1000
            assert first.events("stop")[0]["stop"] == {"reason": "requested"}
            again = await in_thread(
                api.delete, f"{streams_url(session_id, call_id)}/{deleted['streamId']}"
            )
            assert (
                again.status_code == 200 and again.json()["data"]["state"] == "stopped"
            )

            await in_thread(
                api.post, f"/api/v1/sessions/{session_id}/calls/{call_id}/end"
            )
            second = by_stream[ended["streamId"]]
            await asyncio.wait_for(second.closed.wait(), 6)
            assert second.events("stop")[0]["stop"] == {"reason": "call_ended"}
            row = await wait_state(ended["streamId"], StreamState.STOPPED)
            assert row.reason == "call_ended" and row.frames_sent > 0
            (stopped,) = await events_of(ended["streamId"], "call.stream.stopped")
            assert stopped["reason"] == "call_ended"
            assert stopped["framesSent"] == row.frames_sent
            media = second.events("media")
            assert len(media) == row.frames_sent

    asyncio.run(scenario())


def test_headers_and_signature_arrive_and_verify(tenant: Tenant) -> None:
    session_id, call_id, _ = place(tenant.client())

    async def scenario() -> None:
        async with Receiver() as rx:
            stream = await create_stream(
                tenant,
                session_id,
                call_id,
                url=rx.url,
                headers={"Authorization": "Bearer bot-token", "X-Tenant_Id": "t-1"},
                customParameters={"FirstName": "Jane", "snake_case_key": 7},
            )
            connection = await rx.connection()
            await rx.wait_for(lambda: connection.events("start"))
            headers = connection.headers
            assert headers["Authorization"] == "Bearer bot-token"
            assert headers["X-Tenant_Id"] == "t-1"
            assert headers["X-Switchboard-Stream-Id"] == stream["streamId"]
            assert headers["X-Switchboard-Call-Id"] == call_id
            assert connection.path == "/media-stream?bot=1"
            environment = tenant.test
            assert verify_handshake_signature(
                headers["X-Switchboard-Signature"],
                url=rx.url,
                secret=environment.signing_secret,
            )
            assert not verify_handshake_signature(
                headers["X-Switchboard-Signature"],
                url=rx.url + "&evil=1",
                secret=environment.signing_secret,
            )
            assert not verify_handshake_signature(
                headers["X-Switchboard-Signature"], url=rx.url, secret="sbsig_other"
            )
            start = connection.events("start")[0]["start"]
            assert start["custom_parameters"] == {
                "FirstName": "Jane",
                "snake_case_key": 7,
            }

    asyncio.run(scenario())
