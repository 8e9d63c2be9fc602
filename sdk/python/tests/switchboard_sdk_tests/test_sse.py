"""Server-Sent Events: resuming from the last id, by hand and by reconnecting."""

from __future__ import annotations

import asyncio
import contextlib

from switchboard_sdk import AsyncSwitchboard, Switchboard
from switchboard_sdk.types import Event

from conftest import LiveServer, Tenant


def resume_point(sb: Switchboard) -> str:
    """The id of the newest event: a stream opened after it misses nothing later."""
    sb.sessions.create("Before")
    return list(sb.events.list(limit=1))[-1]["id"]


def test_resuming_from_the_last_id_sends_exactly_what_was_missed(
    sb: Switchboard,
) -> None:
    start = resume_point(sb)
    first = sb.events.stream(last_event_id=start, reconnect=False, read_timeout=10)
    seen = [sb.sessions.create(name)["sessionId"] for name in ("A", "B")]
    got = [next(first), next(first)]
    assert [e["sessionId"] for e in got] == seen
    assert all(e["type"] == "session.created" for e in got)
    assert first.last_event_id == got[-1]["id"]
    first.close()

    # While nobody listens: three sessions, one of them connected (more events).
    missed_sessions = [sb.sessions.create(f"Missed {n}")["sessionId"] for n in range(3)]
    sb.sessions.connect(missed_sessions[0])
    missed = [e["id"] for e in sb.events.list(after=got[-1]["id"])]
    assert len(missed) >= 4

    with sb.events.stream(
        last_event_id=first.last_event_id, reconnect=False, read_timeout=10
    ) as resumed:
        replayed = [next(resumed) for _ in missed]
        assert [e["id"] for e in replayed] == missed  # in order, no gap, no repeat
        # Then live, after the replay.
        live = sb.sessions.create("Live")["sessionId"]
        following = next(resumed)
        while following["sessionId"] != live:  # the connected line's own events
            assert following["id"] not in missed
            following = next(resumed)
        assert following["type"] == "session.created"


class SeverableProxy:
    """A TCP proxy to the server whose open connections the test can cut."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def sever(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.sever()
        self.server.close()
        await self.server.wait_closed()


def test_the_stream_reconnects_by_itself_after_a_drop_and_misses_nothing(
    sb: Switchboard, live: LiveServer, tenant: Tenant
) -> None:
    start = resume_point(sb)

    async def scenario() -> tuple[list[Event], int]:
        proxy = SeverableProxy(int(live.url.rsplit(":", 1)[1]))
        await proxy.start()
        async with AsyncSwitchboard(
            f"http://127.0.0.1:{proxy.port}", tenant.test_key
        ) as through_proxy:
            stream = through_proxy.events.stream(last_event_id=start, retry=0.05)
            received: list[Event] = []
            created: list[str] = []

            async def until(count: int) -> None:
                async with asyncio.timeout(10):
                    while len(created) < count:
                        event = await anext(stream)
                        received.append(event)
                        if event["type"] == "session.created":
                            created.append(event["data"]["session"]["displayName"])

            sb.sessions.create("One")
            await until(1)
            proxy.sever()  # the connection drops mid-stream...
            for name in ("Two", "Three"):  # ...while the log goes on
                await asyncio.to_thread(sb.sessions.create, name)
            await until(3)
            await asyncio.to_thread(sb.sessions.create, "Four")  # and live again
            await until(4)
            await stream.aclose()
            await proxy.close()
            assert created == ["One", "Two", "Three", "Four"]
            return received, stream.connections

    received, connections = asyncio.run(scenario())
    # Exactly the log: nothing skipped, nothing twice.
    assert [e["id"] for e in received] == [e["id"] for e in sb.events.list(after=start)]
    assert connections >= 2
