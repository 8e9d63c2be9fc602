"""A stream worker against fake sockets: the clock's side never waits for a receiver."""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
from collections.abc import Coroutine
from typing import Any, cast

import numpy as np

from streams.formats import FORMATS
from streams.protocol import StreamIdentity
from streams.worker import StreamOptions, StreamWorker, WorkerConfig


class FakeSocket:
    """A receiver's socket: ``blocked`` never takes a frame (a dead or slow receiver)."""

    def __init__(self, *, blocked: bool = False) -> None:
        self.blocked = blocked
        self.sent: list[dict[str, Any]] = []
        self.incoming: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason = ""

    async def send(self, text: str) -> None:
        if self.blocked:
            await asyncio.Event().wait()
        self.sent.append(json.loads(text))

    def __aiter__(self) -> FakeSocket:
        return self

    async def __anext__(self) -> str | bytes:
        item = await self.incoming.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.close_code = code
        self.incoming.put_nowait(None)

    def kinds(self) -> list[str]:
        return [m["event"] for m in self.sent]


class FakeHost:
    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []
        self.hung_up = False

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(coro)

    def attach(self, worker: StreamWorker) -> None:
        pass

    def detach(self, worker: StreamWorker) -> None:
        pass

    async def transition(self, worker: StreamWorker, state: str, reason: str) -> bool:
        self.states.append((state, reason))
        return True

    async def save_counters(self, worker: StreamWorker) -> None:
        pass

    def hang_up(self, worker: StreamWorker) -> None:
        self.hung_up = True


def make_worker(
    *,
    type: str = "oneway",
    channel: str = "both",
    fmt: str = "f32_16000",
    **config: Any,
) -> StreamWorker:
    identity = StreamIdentity(
        call_id="01a1fc4a-0000-7000-8000-00000000c411",
        stream_id="01a1fc4a-0000-7000-8000-0000000057e4",
        session_id="01a1fc4a-0000-7000-8000-000000005e55",
        environment_id="01a1fc4a-0000-7000-8000-0000000000e7",
        type=type,
        channel=channel,
        format=FORMATS[fmt],
    )
    options = StreamOptions(
        url="ws://127.0.0.1:9/x",
        headers={},
        on_disconnect="continue",
        dialect="wavix",
        signing_secret="sbsig_test",
    )
    return StreamWorker(identity, options, WorkerConfig(**config), FakeHost())


async def open_session(worker: StreamWorker, socket: FakeSocket) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(
        worker._session(cast(Any, socket), reconnect=False)
    )
    while not worker._streaming:
        await asyncio.sleep(0)
    return task


async def close_session(worker: StreamWorker, task: asyncio.Task[Any]) -> None:
    worker.request_stop("requested")
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)


def test_a_receiver_that_takes_nothing_costs_the_clock_nothing_and_its_frames_are_counted() -> (
    None
):
    frame = np.full(320, 0.1, dtype=np.float32)

    async def scenario() -> None:
        slow, healthy = make_worker(send_queue_ms=200), make_worker(send_queue_ms=200)
        slow_socket, healthy_socket = FakeSocket(blocked=True), FakeSocket()
        slow_task = await open_session(slow, slow_socket)
        healthy_task = await open_session(healthy, healthy_socket)
        costs = []
        for tick in range(500):
            started = time.perf_counter()
            slow.on_media(frame, frame)
            costs.append(time.perf_counter() - started)
            healthy.on_media(frame, frame)
            if tick % 5 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        # 1000 frames (two tracks): ten per track fit the 200 ms queue, the rest drop.
        assert slow._queued_media == 20 and slow.frames_sent == 0
        assert slow.frames_dropped == 980
        # The other stream of the same call is untouched by it.
        assert healthy.frames_sent == 1000 and healthy.frames_dropped == 0
        media = [m for m in healthy_socket.sent if m["event"] == "media"]
        inbound = [
            m["media"]["timestamp"] for m in media if m["media"]["track"] == "inbound"
        ]
        assert inbound == list(range(0, 10000, 20))
        # on_media only encodes and queues: tens of microseconds, whatever the receiver.
        assert statistics.median(costs) < 0.0005, statistics.median(costs)
        await close_session(healthy, healthy_task)
        await close_session(slow, slow_task)
        assert (
            healthy_socket.kinds()[-1] == "stop" and healthy_socket.close_code == 1000
        )

    asyncio.run(scenario())


def test_bad_frames_from_a_receiver_are_counted_and_the_stream_goes_on() -> None:
    async def scenario() -> None:
        worker = make_worker(type="twoway", channel="inbound", fmt="pcm16_16000")
        socket = FakeSocket()
        task = await open_session(worker, socket)
        bad_frames: list[str | bytes] = [
            "not json",
            json.dumps({"event": "dtmf"}),
            json.dumps({"event": "media", "media": {"payload": "AAEC"}}),  # 3 bytes
            json.dumps({"event": "media", "media": {"payload": "%%%"}}),
            b"\x00\x01",
        ]
        for bad in bad_frames:
            socket.incoming.put_nowait(bad)
        await asyncio.sleep(0.05)
        assert worker.protocol_errors == 5 and worker._streaming
        assert "binary" in worker.last_error
        await close_session(worker, task)

    asyncio.run(scenario())


def pcm16(samples: np.ndarray) -> str:
    return base64.b64encode(FORMATS["pcm16_16000"].encode(samples)).decode()


def test_twoway_marks_are_answered_when_played_and_cleared_ones_at_once() -> None:
    async def scenario() -> None:
        worker = make_worker(type="twoway", channel="inbound", fmt="pcm16_16000")
        socket = FakeSocket()
        task = await open_session(worker, socket)
        second = np.full(16000, 0.2, dtype=np.float32)
        worker.handle_text(
            json.dumps({"event": "media", "media": {"payload": pcm16(second)}})
        )
        worker.handle_text(
            json.dumps({"event": "mark", "mark": {"name": "one-second"}})
        )
        out = np.zeros(320, dtype=np.float32)
        played = 0
        for _ in range(49):
            played += worker.read_into(out)
        await asyncio.sleep(0.01)
        assert "mark" not in socket.kinds() and played == 49 * 320
        worker.read_into(out)
        await asyncio.sleep(0.01)
        assert socket.sent[-1]["mark"] == {"name": "one-second"}
        worker.handle_text(
            json.dumps({"event": "media", "media": {"payload": pcm16(second)}})
        )
        worker.handle_text(json.dumps({"event": "mark", "mark": {"name": "later"}}))
        worker.handle_text(json.dumps({"event": "clear"}))
        await asyncio.sleep(0.01)
        assert socket.sent[-1]["mark"] == {"name": "later", "cleared": True}
        assert worker.read_into(out) == 0 and not out.any()
        # More than the playout buffer holds: the excess is dropped and counted.
        eleven = np.full(11 * 16000, 0.1, dtype=np.float32)
        worker.handle_text(
            json.dumps({"event": "media", "media": {"payload": pcm16(eleven)}})
        )
        assert (
            worker.frames_dropped == 50 and "playout buffer full" in worker.last_error
        )
        assert worker.frames_received == 50 + 50 + 550
        await close_session(worker, task)

    asyncio.run(scenario())


def test_a_oneway_stream_answers_marks_at_once_and_ignores_media() -> None:
    async def scenario() -> None:
        worker = make_worker(channel="inbound")
        socket = FakeSocket()
        task = await open_session(worker, socket)
        worker.handle_text(json.dumps({"event": "media", "media": {"payload": "AAAA"}}))
        worker.handle_text(json.dumps({"event": "mark", "mark": {"name": "seen"}}))
        await asyncio.sleep(0.01)
        assert socket.sent[-1]["mark"] == {"name": "seen"}
        assert worker.protocol_errors == 1 and worker.frames_received == 0
        await close_session(worker, task)

    asyncio.run(scenario())


def test_without_private_targets_a_name_resolving_to_loopback_fails_at_connect() -> (
    None
):
    # A name that was public when the stream was created may resolve inside later
    # (DNS rebinding): the worker resolves again and refuses before connecting.
    async def scenario() -> None:
        worker = make_worker(allow_private=False)
        host = worker.host
        assert isinstance(host, FakeHost)
        await asyncio.wait_for(worker.run(), 5)
        assert host.states == [("connecting", ""), ("failed", "target_refused")]
        assert "loopback" in worker.last_error

    asyncio.run(scenario())
