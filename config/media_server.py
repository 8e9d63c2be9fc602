"""uvicorn's WebSocket protocol with a short path for the media socket's audio frames.

Processes that carry many media sockets run uvicorn (see the README), with
``--ws config.media_server:MediaWebSocketProtocol``. Every live call's socket carries a
binary frame each way 50 times a second, and three of uvicorn's per-message costs are
general-purpose machinery this traffic does not need:

- **Sending**: uvicorn builds each frame through ``websockets``' frame objects (checks,
  extensions, a BytesIO). When nothing else can apply (the socket is open and writable,
  no extension such as permessage-deflate was negotiated, no fragmented message is under
  way), this protocol writes the frame header and the payload straight to the transport:
  the bytes on the wire are the same.
- **Receiving**: uvicorn stops reading the socket after every message until the app has
  taken it (two event-loop registrations per frame). Here reading pauses only when
  ``HIGH_WATER`` messages wait, and resumes once the app has taken them down to
  ``LOW_WATER``: memory stays bounded, and a slow app still pushes back on its client.
- **The receive queue**: an ``asyncio.Queue`` (task accounting, events, putters) becomes a
  deque with the waiting receivers' futures.

Everything else (text frames, close, pings, the handshake) goes through uvicorn unchanged.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)
from websockets.protocol import State

_FIN_BINARY = 0x82
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")

HIGH_WATER = 32  # messages waiting for the app before the socket stops being read
LOW_WATER = 4


def binary_frame_header(length: int) -> bytes:
    """The RFC 6455 header of an unmasked, unfragmented binary frame of ``length`` bytes."""
    if length < 126:
        return _SHORT.pack(_FIN_BINARY, length)
    if length < 65536:
        return _MEDIUM.pack(_FIN_BINARY, 126, length)
    return _LONG.pack(_FIN_BINARY, 127, length)


class MessageQueue:
    """What uvicorn needs of its receive queue (put_nowait, get, empty), lighter."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._wake_one()

    async def get(self) -> Any:
        items = self._items
        while not items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # Woken and cancelled at once: hand the wake-up on to the next getter.
                if waiter.done() and not waiter.cancelled() and items:
                    self._wake_one()
                raise
        return items.popleft()

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class MediaWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: MessageQueue = MessageQueue()  # type: ignore[assignment]

    def send_receive_event_to_app(self) -> None:
        frames = self.frames
        if self.curr_msg_data_type != "bytes" or len(frames) != 1 or self.close_sent:
            super().send_receive_event_to_app()
            return
        self.frames = []
        queue = self.queue
        queue.put_nowait({"type": "websocket.receive", "bytes": frames[0]})
        if not self.read_paused and len(queue) >= HIGH_WATER:
            self.read_paused = True
            self.transport.pause_reading()

    async def receive(self) -> Any:
        queue = self.queue
        message = await queue.get()
        if self.read_paused and len(queue) <= LOW_WATER:
            self.read_paused = False
            self.transport.resume_reading()
        return message

    async def send(self, message: Any) -> None:
        data = message.get("bytes")
        conn = self.conn
        if (
            data is not None
            and message["type"] == "websocket.send"
            and self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
            and self.writable.is_set()
            and conn.state is State.OPEN
            and not conn.extensions
            and not conn.expect_continuation_frame
            and not conn.writes
        ):
            self.transport.write(binary_frame_header(len(data)) + data)
            return
        await super().send(message)
