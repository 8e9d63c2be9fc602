"""A customer's WebSocket server for dial-out streams, run in the test's own event loop."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from streams.formats import FORMATS


class Connection:
    """One connection the platform opened, with everything it sent."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.path = ws.request.path if ws.request else ""
        self.headers: Headers = ws.request.headers if ws.request else Headers()
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m.get("event") == kind]

    def kinds(self) -> list[str]:
        return [m["event"] for _, m in self.messages]

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def track(self, name: str, fmt: str) -> np.ndarray:
        """A track's audio, decoded and placed at its timestamps (gaps stay silent)."""
        wire = FORMATS[fmt]
        media = [
            m["media"] for m in self.events("media") if m["media"]["track"] == name
        ]
        if not media:
            return np.zeros(0, dtype=np.float32)
        end = max(int(m["timestamp"]) for m in media) * wire.rate // 1000
        out = np.zeros(end + wire.chunk_samples, dtype=np.float32)
        for item in media:
            start = int(item["timestamp"]) * wire.rate // 1000
            samples = wire.decode(base64.b64decode(item["payload"]))
            out[start : start + len(samples)] = samples
        return out


Behaviour = Callable[[Connection], Coroutine[Any, Any, None]]


class Receiver:
    """``async with Receiver() as rx``: a server on 127.0.0.1, recording connections.

    ``behaviour(connection)`` runs beside the recording for each connection (a bot's
    logic); ``refuse_with`` answers every handshake with that HTTP status instead.
    """

    def __init__(
        self, behaviour: Behaviour | None = None, *, refuse_with: int | None = None
    ) -> None:
        self.behaviour = behaviour
        self.refuse_with = refuse_with
        self.connections: list[Connection] = []
        self.attempts = 0
        self._server: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Receiver:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            compression=None,
            max_size=2**22,
            process_request=self._process_request,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), 5)
        for task in self._tasks:
            task.cancel()

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/media-stream?bot=1"

    def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        self.attempts += 1
        if self.refuse_with is not None:
            return connection.respond(self.refuse_with, "go away\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        connection = Connection(ws)
        self.connections.append(connection)
        if self.behaviour is not None:
            task = asyncio.get_running_loop().create_task(self.behaviour(connection))
            self._tasks.add(task)
        try:
            async for message in ws:
                connection.messages.append((time.monotonic(), json.loads(message)))
        except websockets.ConnectionClosed:
            pass
        finally:
            connection.close_code = ws.close_code
            connection.closed.set()

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 10.0
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                seen = [c.kinds()[-8:] for c in self.connections]
                raise AssertionError(f"not seen within {timeout} s; frames: {seen}")
            await asyncio.sleep(0.01)

    async def connection(self, index: int = 0, timeout: float = 10.0) -> Connection:
        await self.wait_for(lambda: len(self.connections) > index, timeout)
        return self.connections[index]
