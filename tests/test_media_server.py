"""The media socket's uvicorn protocol (config/media_server.py): the frame header it
writes, its receive queue, and the protocol end to end over real TCP sockets, served by
uvicorn in-process with small ASGI apps of the test's own (not the Django app). Frames
go both ways: through the short paths (binary frames written straight to the transport,
incoming frames split by the protocol itself) and through websockets for everything
else. Last, the self-check that picks this protocol or uvicorn's stock one.

.ci/check-server-upgrades runs this file against the newest uvicorn and websockets, with
SWITCHBOARD_MEDIA_PROTOCOL_ANY_VERSION=1: every test here must hold for them too."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import os
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from uvicorn.importer import import_from_string
from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol
from websockets.server import ServerProtocol

from config import media_server
from config.media_server import (
    ANY_VERSION_ENV,
    BINARY_RECEIVER,
    BINARY_SENDER,
    HIGH_WATER,
    LOW_WATER,
    UVICORN_VERSION,
    WEBSOCKETS_VERSION,
    FastMediaWebSocketProtocol,
    MessageQueue,
    binary_frame_header,
    media_protocol_self_check,
    select_media_protocol,
)

T = TypeVar("T")
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MESSAGE_SIZE = 16 * 1024  # large enough that one socket read holds few messages
TOTAL = HIGH_WATER + 40
# asyncio's selector transport reads at most 256 KiB at a time, and every frame read
# is queued: a read can take the queue past HIGH_WATER by at most this many messages.
READ_SIZE = 256 * 1024
MESSAGES_PER_READ = READ_SIZE // MESSAGE_SIZE + 1


def run(coro: Coroutine[Any, Any, T], timeout: float = 15) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def numbered(i: int, size: int = MESSAGE_SIZE) -> bytes:
    """``size`` bytes that tell message ``i`` from the others."""
    return (i.to_bytes(4, "big") * (size // 4 + 1))[:size]


async def eventually(condition: Callable[[], object], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"still false after {timeout}s")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def serving(
    app: Any, **options: Any
) -> AsyncIterator[tuple[uvicorn.Server, str]]:
    """uvicorn on a free 127.0.0.1 port with FastMediaWebSocketProtocol (unless
    ``ws=`` says otherwise), in this loop."""
    settings: dict[str, Any] = {
        "ws": FastMediaWebSocketProtocol,
        "ws_per_message_deflate": False,
        "lifespan": "off",
        "log_config": None,  # leave the process's logging configuration alone
        "timeout_graceful_shutdown": 2,
        **options,
    }
    config = uvicorn.Config(app, host="127.0.0.1", port=0, **settings)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or task.done())
        assert server.started, task.result()
        port = server.servers[0].sockets[0].getsockname()[1]
        yield server, f"ws://127.0.0.1:{port}/media"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 5)


async def media_protocol(server: uvicorn.Server) -> FastMediaWebSocketProtocol:
    def found() -> list[FastMediaWebSocketProtocol]:
        return [
            c
            for c in server.server_state.connections
            if isinstance(c, FastMediaWebSocketProtocol)
        ]

    await eventually(lambda: len(found()) == 1)
    return found()[0]


async def accept(receive: Receive, send: Send) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})


def count_server_send_binary(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record every binary frame the server builds through websockets' Protocol."""
    calls: list[bytes] = []
    original = Protocol.send_binary

    def send_binary(self: Protocol, data: Any, fin: bool = True) -> None:
        if isinstance(self, ServerProtocol):
            calls.append(bytes(data))
        original(self, data, fin)

    monkeypatch.setattr(Protocol, "send_binary", send_binary)
    return calls


def frames_parsed_by_websockets(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record (opcode, fin) of every frame the server's websockets parser produces."""
    seen: list[Any] = []
    original = Protocol.events_received

    def events_received(self: Protocol) -> list[Any]:
        events = original(self)
        if isinstance(self, ServerProtocol):
            seen.extend((e.opcode, e.fin) for e in events if isinstance(e, Frame))
        return events

    monkeypatch.setattr(Protocol, "events_received", events_received)
    return seen


async def raw_request(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client by hand, to put exactly the bytes a test wants on the wire:
    sends the upgrade request."""
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /media HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return reader, writer


async def switched(reader: asyncio.StreamReader) -> None:
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert response.startswith(b"HTTP/1.1 101 ")


async def raw_connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await raw_request(url)
    await switched(reader)
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(first header byte, payload) of one unmasked frame from the server."""
    first, second = await reader.readexactly(2)
    assert not second & 0x80, "a server's frames are not masked"
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first, await reader.readexactly(length)


async def close_code_from(reader: asyncio.StreamReader) -> int:
    """Read the server's frames up to its close frame; return the close code."""
    while True:
        first, payload = await asyncio.wait_for(read_frame(reader), 3)
        if first == 0x88:
            return int.from_bytes(payload[:2], "big")


def masked(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=True)


def collecting_app(
    messages: list[dict[str, Any]], done: asyncio.Event
) -> Callable[[dict[str, Any], Receive, Send], Awaitable[None]]:
    """Accept, then record every event received until the disconnect."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await accept(receive, send)
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] == "websocket.disconnect":
                done.set()
                return

    return app


def contents(messages: list[dict[str, Any]]) -> list[Any]:
    return [m.get("bytes", m.get("text", m.get("code"))) for m in messages]


# binary_frame_header


@pytest.mark.parametrize("length", [0, 1, 125, 126, 1280, 65535, 65536, 70000])
def test_binary_frame_header_matches_websockets_serialization(length: int) -> None:
    payload = bytes(i % 251 for i in range(length))
    expected = Frame(Opcode.BINARY, payload).serialize(mask=False)
    assert binary_frame_header(length) + payload == expected
    header_size = 2 if length < 126 else 4 if length < 65536 else 10
    assert len(binary_frame_header(length)) == header_size


# MessageQueue


def test_message_queue_is_fifo_and_reports_its_contents() -> None:
    async def scenario() -> list[Any]:
        queue = MessageQueue()
        assert queue.empty()
        assert len(queue) == 0
        for item in ("a", "b", "c"):
            queue.put_nowait(item)
        assert not queue.empty()
        assert len(queue) == 3
        got = [await queue.get(), await queue.get()]
        assert len(queue) == 1
        got.append(await queue.get())
        assert queue.empty()
        assert len(queue) == 0
        return got

    assert run(scenario()) == ["a", "b", "c"]


def test_message_queue_get_waits_for_an_item() -> None:
    async def scenario() -> None:
        queue = MessageQueue()
        getter = asyncio.create_task(queue.get())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not getter.done()
        queue.put_nowait("late")
        assert await asyncio.wait_for(getter, 1) == "late"
        assert queue.empty()

    run(scenario())


def test_message_queue_two_waiting_getters_get_one_item_each() -> None:
    async def scenario() -> None:
        queue = MessageQueue()
        first = asyncio.create_task(queue.get())
        second = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        assert not first.done()
        assert not second.done()
        queue.put_nowait("a")
        queue.put_nowait("b")
        results = await asyncio.wait_for(asyncio.gather(first, second), 1)
        assert results == ["a", "b"]
        assert queue.empty()

    run(scenario())


def test_message_queue_a_getter_cancelled_after_its_wake_up_hands_the_item_on() -> None:
    async def scenario() -> None:
        queue = MessageQueue()
        first = asyncio.create_task(queue.get())
        second = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        queue.put_nowait("item")  # wakes `first`...
        first.cancel()  # ...which is cancelled before it runs
        assert await asyncio.wait_for(second, 1) == "item"
        with pytest.raises(asyncio.CancelledError):
            await first
        assert queue.empty()

    run(scenario())


def test_message_queue_a_getter_cancelled_while_waiting_takes_nothing() -> None:
    async def scenario() -> None:
        queue = MessageQueue()
        first = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        queue.put_nowait("item")
        assert await asyncio.wait_for(second, 1) == "item"
        queue.put_nowait("next")
        assert len(queue) == 1
        assert await queue.get() == "next"

    run(scenario())


# FastMediaWebSocketProtocol under uvicorn, over TCP


@pytest.mark.timeout(20)
def test_binary_frames_from_the_app_arrive_intact_and_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = count_server_send_binary(monkeypatch)
    medium, large, small = numbered(1, 1280), numbered(2, 70000), numbered(3, 10)

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await accept(receive, send)
        await send({"type": "websocket.send", "bytes": medium})
        await send({"type": "websocket.send", "text": "between"})
        await send({"type": "websocket.send", "bytes": large})
        await send({"type": "websocket.send", "bytes": small})
        await receive()  # the client's close

    async def scenario() -> list[str | bytes]:
        async with serving(app) as (_, url), connect(url, max_size=None) as ws:
            return [await ws.recv() for _ in range(4)]

    assert run(scenario()) == [medium, "between", large, small]
    # All three binary frames were written by the short path, not by websockets.
    assert built == []


@pytest.mark.timeout(20)
def test_binary_frames_go_through_websockets_when_deflate_is_negotiated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = count_server_send_binary(monkeypatch)
    medium, large = numbered(1, 1280), numbered(2, 70000)

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await accept(receive, send)
        await send({"type": "websocket.send", "bytes": medium})
        await send({"type": "websocket.send", "text": "between"})
        await send({"type": "websocket.send", "bytes": large})
        await receive()

    async def scenario() -> tuple[list[str | bytes], list[str]]:
        async with (
            serving(app, ws_per_message_deflate=True) as (_, url),
            connect(url, max_size=None, compression="deflate") as ws,
        ):
            extensions = [str(e.name) for e in ws.protocol.extensions]
            return [await ws.recv() for _ in range(3)], extensions

    received, extensions = run(scenario())
    assert extensions == ["permessage-deflate"]
    assert received == [medium, "between", large]
    assert built == [medium, large]


@pytest.mark.timeout(30)
def test_reading_pauses_at_high_water_and_resumes_at_low_water() -> None:
    received: list[Any] = []
    # (messages still queued, read_paused) right after each receive() of the app
    states: list[tuple[int, bool]] = []

    async def send_range(ws: ClientConnection, start: int, stop: int) -> None:
        for i in range(start, stop):
            await ws.send(numbered(i))

    async def scenario() -> int:
        release = asyncio.Event()
        all_in = asyncio.Event()
        probe: list[FastMediaWebSocketProtocol] = []

        async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
            await accept(receive, send)
            await release.wait()
            while len(received) < TOTAL:
                message = await receive()
                states.append((len(probe[0].queue), probe[0].read_paused))
                received.append(message.get("bytes", message))
            all_in.set()
            await receive()

        async with serving(app) as (server, url), connect(url) as ws:
            protocol = await media_protocol(server)
            probe.append(protocol)

            # Below HIGH_WATER the socket is read on: no pause after each message.
            await send_range(ws, 0, HIGH_WATER - 1)
            await eventually(lambda: len(protocol.queue) == HIGH_WATER - 1)
            await asyncio.sleep(0.05)
            assert protocol.read_paused is False
            assert len(protocol.queue) == HIGH_WATER - 1

            # From HIGH_WATER on, reading stops, and stays stopped.
            sender = asyncio.create_task(send_range(ws, HIGH_WATER - 1, TOTAL))
            await eventually(lambda: protocol.read_paused)
            queued = len(protocol.queue)
            assert HIGH_WATER <= queued <= HIGH_WATER + MESSAGES_PER_READ
            assert queued < TOTAL
            await asyncio.sleep(0.3)
            assert protocol.read_paused is True
            assert len(protocol.queue) == queued
            assert received == []

            # The app takes everything: reading resumes and every message arrives.
            release.set()
            await asyncio.wait_for(all_in.wait(), 5)
            await asyncio.wait_for(sender, 5)
            assert protocol.read_paused is False
            assert len(protocol.queue) == 0
            return queued

    queued = run(scenario())
    assert len(received) == TOTAL
    assert received == [numbered(i) for i in range(TOTAL)]
    # The queued messages are taken without the loop reading in between: the socket
    # stays paused while more than LOW_WATER wait, and resumes at LOW_WATER.
    drained = [(n, n > LOW_WATER) for n in range(queued - 1, LOW_WATER - 1, -1)]
    assert states[: len(drained)] == drained


@pytest.mark.timeout(20)
def test_a_close_from_the_app_reaches_the_client_with_its_code() -> None:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await accept(receive, send)
        await send({"type": "websocket.send", "bytes": b"\x01" * 10})
        await send({"type": "websocket.close", "code": 4409, "reason": "taken"})

    async def scenario() -> tuple[bytes | str, int | None, str | None, bool]:
        async with serving(app) as (server, url), connect(url) as ws:
            protocol = await media_protocol(server)
            first = await ws.recv()
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            await asyncio.wait_for(ws.wait_closed(), 3)
            await eventually(lambda: protocol not in server.server_state.connections)
            return first, ws.close_code, ws.close_reason, protocol.close_sent

    assert run(scenario()) == (b"\x01" * 10, 4409, "taken", True)


@pytest.mark.timeout(20)
def test_a_close_while_reading_is_paused_completes_the_closing_handshake() -> None:
    async def scenario() -> tuple[int | None, float]:
        close_now = asyncio.Event()

        async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
            await accept(receive, send)
            await close_now.wait()
            await send({"type": "websocket.close", "code": 4409})

        async def flood(ws: ClientConnection) -> None:
            with contextlib.suppress(ConnectionClosed):
                for i in range(TOTAL):
                    await ws.send(numbered(i))

        async with serving(app) as (server, url), connect(url) as ws:
            protocol = await media_protocol(server)
            sender = asyncio.create_task(flood(ws))
            await eventually(lambda: protocol.read_paused)
            loop = asyncio.get_running_loop()
            started = loop.time()
            close_now.set()
            # The server must read on to the client's close reply: if it stayed
            # paused, only its 10 s close timeout would end the connection.
            await asyncio.wait_for(ws.wait_closed(), 3)
            await eventually(lambda: protocol not in server.server_state.connections)
            elapsed = loop.time() - started
            await asyncio.wait_for(sender, 3)
            return ws.close_code, elapsed

    code, elapsed = run(scenario())
    assert code == 4409
    assert elapsed < 2


# Frames from the client: split by the protocol, or handed to websockets


CLIENT_PAYLOADS = [
    numbered(i, n) for i, n in enumerate([0, 1, 125, 126, 1280, 65535, 65536, 70000])
]


@pytest.mark.timeout(20)
def test_frames_from_the_client_reach_the_app_intact_and_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed = frames_parsed_by_websockets(monkeypatch)
    messages: list[dict[str, Any]] = []

    async def scenario() -> None:
        done = asyncio.Event()
        app = collecting_app(messages, done)
        async with serving(app) as (_, url):
            async with connect(url, max_size=None) as ws:
                for payload in CLIENT_PAYLOADS[:4]:
                    await ws.send(payload)
                await ws.send("text in between")
                pong = await ws.ping(b"ping")
                await asyncio.wait_for(pong, 2)
                await ws.send([b"frag", b"men", b"ted"])  # one message, 3 frames
                for payload in CLIENT_PAYLOADS[4:]:
                    await ws.send(payload)
            await asyncio.wait_for(done.wait(), 3)

    run(scenario())
    assert contents(messages) == [
        *CLIENT_PAYLOADS[:4],
        "text in between",
        b"fragmented",
        *CLIENT_PAYLOADS[4:],
        1000,
    ]
    assert all(type(m["bytes"]) is bytes for m in messages if "bytes" in m)
    # Complete binary frames were split and unmasked by the protocol; websockets
    # parsed everything else, whole.
    assert parsed == [
        (Opcode.TEXT, True),
        (Opcode.PING, True),
        (Opcode.BINARY, False),
        (Opcode.CONT, False),
        (Opcode.CONT, False),
        (Opcode.CONT, True),  # the websockets client ends fragments with an empty one
        (Opcode.CLOSE, True),
    ]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("delivery", ["one write", "split across reads"])
def test_frames_split_anywhere_across_reads_are_reassembled(
    delivery: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = frames_parsed_by_websockets(monkeypatch)
    frames = [
        masked(Opcode.BINARY, b""),
        masked(Opcode.BINARY, numbered(1, 124)),
        masked(Opcode.BINARY, numbered(2, 128)),
        masked(Opcode.TEXT, "héllo".encode()),
        masked(Opcode.BINARY, b"frag", fin=False),
        masked(Opcode.CONT, b"mented"),
        masked(Opcode.BINARY, numbered(3, 65536)),
        masked(Opcode.BINARY, numbered(4, 1280)),
        masked(Opcode.CLOSE, Close(1000, "bye").serialize()),
    ]
    stream = b"".join(frames)
    messages: list[dict[str, Any]] = []

    async def scenario() -> int:
        done = asyncio.Event()
        async with serving(collecting_app(messages, done)) as (_, url):
            reader, writer = await raw_connect(url)
            if delivery == "one write":
                writer.write(stream)
            else:
                # Byte by byte, and then a few bytes at a time, through every frame
                # header (lengths and masks included); then larger, odd pieces.
                pos, step = 0, 0
                while pos < len(stream):
                    size = step % 7 + 1 if pos < 800 else 5003
                    writer.write(stream[pos : pos + size])
                    await writer.drain()
                    await asyncio.sleep(0.001)  # the server reads this piece alone
                    pos += size
                    step += 1
            code = await close_code_from(reader)
            await asyncio.wait_for(done.wait(), 3)
            writer.close()
            return code

    assert run(scenario()) == 1000
    assert contents(messages) == [
        b"",
        numbered(1, 124),
        numbered(2, 128),
        "héllo",
        b"fragmented",
        numbered(3, 65536),
        numbered(4, 1280),
        1000,
    ]
    assert parsed == [
        (Opcode.TEXT, True),
        (Opcode.BINARY, False),
        (Opcode.CONT, True),
        (Opcode.CLOSE, True),
    ]


@pytest.mark.timeout(20)
def test_frames_after_the_clients_close_are_not_delivered() -> None:
    messages: list[dict[str, Any]] = []

    async def scenario() -> tuple[int, list[Any]]:
        done = asyncio.Event()
        async with serving(collecting_app(messages, done)) as (server, url):
            reader, writer = await raw_connect(url)
            protocol = await media_protocol(server)
            writer.write(
                masked(Opcode.BINARY, b"before")
                + masked(Opcode.CLOSE, Close(1000, "bye").serialize())
                + masked(Opcode.BINARY, b"after")
            )
            code = await close_code_from(reader)
            await asyncio.wait_for(done.wait(), 3)
            writer.close()
            await eventually(lambda: protocol not in server.server_state.connections)
            left = [await protocol.queue.get() for _ in range(len(protocol.queue))]
            return code, left

    code, left = run(scenario())
    assert code == 1000
    assert contents(messages) == [b"before", 1000]
    # Only uvicorn's own disconnect (from connection_lost) is left: no "after".
    assert left == [{"type": "websocket.disconnect", "code": 1005}]


def _rsv1(frame: bytes) -> bytes:
    return bytes([frame[0] | 0x40]) + frame[1:]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("wire", "code"),
    [
        pytest.param(
            Frame(Opcode.BINARY, b"abc").serialize(mask=False), 1002, id="unmasked"
        ),
        pytest.param(_rsv1(masked(Opcode.BINARY, b"abc")), 1002, id="reserved-bit"),
        pytest.param(masked(Opcode.CONT, b"abc"), 1002, id="stray-continuation"),
        pytest.param(
            masked(Opcode.BINARY, b"ab", fin=False) + masked(Opcode.BINARY, b"cd"),
            1002,
            id="new-message-inside-a-fragmented-one",
        ),
        pytest.param(masked(Opcode.TEXT, b"\xff\xfe"), 1007, id="invalid-utf8"),
        pytest.param(masked(Opcode.BINARY, bytes(1025)), 1009, id="frame-too-big"),
        pytest.param(
            masked(Opcode.BINARY, bytes(700), fin=False)
            + masked(Opcode.CONT, bytes(700)),
            1009,
            id="fragments-too-big",
        ),
    ],
)
def test_a_protocol_violation_closes_the_connection_with_its_code(
    wire: bytes, code: int
) -> None:
    messages: list[dict[str, Any]] = []

    async def scenario() -> int:
        done = asyncio.Event()
        app = collecting_app(messages, done)
        async with serving(app, ws_max_size=1024) as (_, url):
            reader, writer = await raw_connect(url)
            # A valid frame first: the violation comes once frames are split here.
            writer.write(masked(Opcode.BINARY, b"fine"))
            await writer.drain()
            await eventually(lambda: len(messages) == 1)
            writer.write(wire)
            received = await close_code_from(reader)
            await asyncio.wait_for(done.wait(), 3)
            writer.close()
            return received

    assert run(scenario()) == code
    assert contents(messages) == [b"fine", code]


@pytest.mark.timeout(20)
def test_a_frame_at_the_size_limit_is_accepted() -> None:
    messages: list[dict[str, Any]] = []

    async def scenario() -> None:
        done = asyncio.Event()
        app = collecting_app(messages, done)
        async with serving(app, ws_max_size=1024) as (_, url):
            async with connect(url) as ws:
                await ws.send(numbered(7, 1024))
            await asyncio.wait_for(done.wait(), 3)

    run(scenario())
    assert contents(messages) == [numbered(7, 1024), 1000]


@pytest.mark.timeout(20)
def test_frames_sent_before_the_accept_go_through_websockets_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that sends before the 101 response: frames are not split here, and
    the binary ones still only pause reading at HIGH_WATER."""
    parsed = frames_parsed_by_websockets(monkeypatch)
    received: list[Any] = []

    async def scenario() -> tuple[bool, int, bool]:
        accept_now = asyncio.Event()
        release = asyncio.Event()
        all_in = asyncio.Event()
        total = HIGH_WATER + 8

        async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
            assert (await receive())["type"] == "websocket.connect"
            await accept_now.wait()
            await send({"type": "websocket.accept"})
            await release.wait()
            while len(received) < total:
                received.append((await receive()).get("bytes"))
            all_in.set()
            await receive()

        async with serving(app) as (server, url):
            reader, writer = await raw_request(url)
            protocol = await media_protocol(server)
            await eventually(lambda: protocol.handshake_initiated)
            writer.write(masked(Opcode.BINARY, numbered(0, 10)))  # before the 101
            await eventually(lambda: len(protocol.queue) == 1)
            accept_now.set()
            await switched(reader)
            for i in range(1, HIGH_WATER - 1):
                writer.write(masked(Opcode.BINARY, numbered(i, 10)))
            await eventually(lambda: len(protocol.queue) == HIGH_WATER - 1)
            paused_below_high_water = protocol.read_paused
            for i in range(HIGH_WATER - 1, total):
                writer.write(masked(Opcode.BINARY, numbered(i, 10)))
            await eventually(lambda: protocol.read_paused)
            queued = len(protocol.queue)
            release.set()
            await asyncio.wait_for(all_in.wait(), 3)
            resumed = not protocol.read_paused
            writer.write(masked(Opcode.CLOSE, Close(1000, "").serialize()))
            assert await close_code_from(reader) == 1000
            writer.close()
            return paused_below_high_water, queued, resumed

    paused_below_high_water, queued, resumed = run(scenario())
    assert paused_below_high_water is False
    assert queued >= HIGH_WATER
    assert resumed is True
    assert received == [numbered(i, 10) for i in range(HIGH_WATER + 8)]
    assert parsed == [(Opcode.BINARY, True)] * (HIGH_WATER + 8) + [(Opcode.CLOSE, True)]


# ---------------------------------------------------------------------------------------
# The extensions: binary frames handed to a callback, and written without a message
def test_binary_frames_reach_the_receiver_directly_but_never_overtake_text() -> None:
    async def scenario() -> None:
        direct: list[bytes] = []
        through_receive: list[dict[str, Any]] = []

        async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
            await accept(receive, send)
            scope["extensions"][BINARY_RECEIVER]["set"](direct.append)
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                through_receive.append(message)
                if "text" in message and message["text"] == "stop":
                    scope["extensions"][BINARY_RECEIVER]["set"](None)

        async with serving(app) as (_, url):
            _reader, writer = await raw_connect(url)
            for i in range(3):
                writer.write(masked(Opcode.BINARY, numbered(i, 1280)))
            await eventually(lambda: len(direct) == 3)
            assert direct == [numbered(i, 1280) for i in range(3)]
            assert through_receive == []  # the app's task was never woken for them

            # In one read: a text frame (queued for the app), then a binary frame,
            # which must queue behind the text instead of overtaking it.
            writer.write(
                masked(Opcode.TEXT, b"first") + masked(Opcode.BINARY, numbered(3, 1280))
            )
            await eventually(lambda: len(through_receive) == 2)
            assert through_receive == [
                {"type": "websocket.receive", "text": "first"},
                {"type": "websocket.receive", "bytes": numbered(3, 1280)},
            ]
            assert len(direct) == 3

            writer.write(masked(Opcode.BINARY, numbered(5, 1280)))  # empty queue
            await eventually(lambda: len(direct) == 4)
            assert direct[-1] == numbered(5, 1280)

            writer.write(masked(Opcode.TEXT, b"stop"))  # set(None): back to receive()
            await eventually(lambda: len(through_receive) == 3)
            writer.write(masked(Opcode.BINARY, numbered(6, 1280)))
            await eventually(lambda: len(through_receive) == 4)
            assert through_receive[-1]["bytes"] == numbered(6, 1280)
            assert len(direct) == 4
            writer.close()

    run(scenario())


def test_a_failing_receiver_is_logged_and_the_socket_keeps_working(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        seen: list[bytes] = []

        def receiver(data: bytes) -> None:
            seen.append(data)
            if len(seen) == 1:
                raise RuntimeError("boom")

        async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
            await accept(receive, send)
            scope["extensions"][BINARY_RECEIVER]["set"](receiver)
            while (await receive())["type"] != "websocket.disconnect":
                pass

        async with serving(app) as (_, url), connect(url) as ws:
            await ws.send(numbered(0, 64))
            await ws.send(numbered(1, 64))
            await eventually(lambda: len(seen) == 2)
            assert seen == [numbered(0, 64), numbered(1, 64)]

    run(scenario())
    assert "binary receiver of a WebSocket failed" in caplog.text


def test_the_binary_sender_writes_at_once_and_declines_once_closed() -> None:
    async def scenario() -> None:
        answers: list[bool] = []

        async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
            await accept(receive, send)
            send_now = scope["extensions"][BINARY_SENDER]["send"]
            answers.append(send_now(numbered(0, 1280)))
            await send({"type": "websocket.send", "text": "between"})
            answers.append(send_now(numbered(1, 70000)))
            await send({"type": "websocket.close", "code": 4409})
            answers.append(send_now(numbered(2, 1280)))  # closed: not written
            while (await receive())["type"] != "websocket.disconnect":
                pass

        async with serving(app) as (_, url), connect(url) as ws:
            got = [await ws.recv() for _ in range(3)]
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert got == [numbered(0, 1280), "between", numbered(1, 70000)]
        assert answers == [True, True, False]
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409

    run(scenario())


# ---------------------------------------------------------------------------------------
# The self-check: the pins, the internals, and the fallback to uvicorn's stock protocol

ROOT = Path(__file__).resolve().parent.parent


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == media_server.__name__ and r.levelno >= logging.WARNING
    ]


def test_the_installed_uvicorn_and_websockets_pass_the_self_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert media_protocol_self_check() == []
    assert select_media_protocol() is FastMediaWebSocketProtocol
    assert warnings_in(caplog) == []


def test_uvicorns_ws_option_loads_the_fast_protocol() -> None:
    loaded = import_from_string("config.media_server:MediaWebSocketProtocol")
    assert loaded is FastMediaWebSocketProtocol


def test_the_protocol_is_chosen_once_when_first_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chosen: list[type[WebSocketsSansIOProtocol]] = []

    def select() -> type[WebSocketsSansIOProtocol]:
        chosen.append(WebSocketsSansIOProtocol)
        return WebSocketsSansIOProtocol

    monkeypatch.delitem(vars(media_server), "MediaWebSocketProtocol", raising=False)
    monkeypatch.setattr(media_server, "select_media_protocol", select)
    assert media_server.MediaWebSocketProtocol is WebSocketsSansIOProtocol
    assert media_server.MediaWebSocketProtocol is WebSocketsSansIOProtocol
    assert len(chosen) == 1


def test_pyproject_and_the_lock_file_pin_the_versions_the_self_check_expects() -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    locked = (ROOT / "requirements.lock").read_text().splitlines()
    for pin in (f"uvicorn=={UVICORN_VERSION}", f"websockets=={WEBSOCKETS_VERSION}"):
        assert pin in dependencies
        assert pin in locked


def _drop_after_init(
    monkeypatch: pytest.MonkeyPatch, cls: type, attribute: str
) -> None:
    """Make ``cls`` (as a newer release might) no longer set ``attribute``."""
    original = vars(cls)["__init__"]

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        delattr(self, attribute)

    monkeypatch.setattr(cls, "__init__", init)


SIMULATED_CHANGES: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], str]] = {
    "uvicorn-method-gone": (
        lambda mp: mp.delattr(WebSocketsSansIOProtocol, "handle_parser_exception"),
        "WebSocketsSansIOProtocol.handle_parser_exception is missing",
    ),
    "uvicorn-state-renamed": (
        lambda mp: _drop_after_init(mp, WebSocketsSansIOProtocol, "read_paused"),
        "WebSocketsSansIOProtocol has no attribute read_paused",
    ),
    "websockets-state-renamed": (
        lambda mp: _drop_after_init(mp, Protocol, "current_size"),
        "websockets' ServerProtocol has no attribute current_size",
    ),
    "apply-mask-changed": (
        lambda mp: mp.setattr(media_server, "apply_mask", lambda d, m: bytearray(d)),
        "websockets.frames.apply_mask returned bytearray",
    ),
    "another-version": (
        lambda mp: mp.setattr(media_server, "WEBSOCKETS_VERSION", "16.0"),
        f"websockets {metadata.version('websockets')} is installed, not 16.0",
    ),
}


@pytest.mark.parametrize("change", SIMULATED_CHANGES)
def test_a_changed_internal_falls_back_to_the_stock_protocol_with_one_warning(
    change: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(ANY_VERSION_ENV, raising=False)
    simulate, problem = SIMULATED_CHANGES[change]
    simulate(monkeypatch)

    assert any(p.startswith(problem) for p in media_protocol_self_check())
    assert select_media_protocol() is WebSocketsSansIOProtocol
    [warning] = warnings_in(caplog)
    assert "uvicorn's stock WebSocket protocol" in warning
    assert problem in warning


def test_the_version_comparison_alone_can_be_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(media_server, "UVICORN_VERSION", "0.1.0")
    monkeypatch.delenv(ANY_VERSION_ENV, raising=False)
    installed = f"uvicorn {metadata.version('uvicorn')} is installed, not 0.1.0"
    assert installed in media_protocol_self_check()
    monkeypatch.setenv(ANY_VERSION_ENV, "1")
    assert not any("is installed" in p for p in media_protocol_self_check())


@pytest.mark.timeout(20)
def test_the_fallback_serves_the_standard_path_without_the_extensions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(WebSocketsSansIOProtocol, "handle_parser_exception")
    stock = select_media_protocol()
    monkeypatch.undo()  # the stock protocol needs the method to serve
    extensions: list[str] = []

    async def echo(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        extensions.extend(scope["extensions"])
        await accept(receive, send)
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "bytes": message["bytes"]})

    async def scenario() -> list[str | bytes]:
        async with serving(echo, ws=stock) as (_, url), connect(url) as ws:
            for i in range(3):
                await ws.send(numbered(i, 1280))
            return [await ws.recv() for _ in range(3)]

    assert stock is WebSocketsSansIOProtocol
    assert run(scenario()) == [numbered(i, 1280) for i in range(3)]
    assert BINARY_RECEIVER not in extensions
    assert BINARY_SENDER not in extensions
