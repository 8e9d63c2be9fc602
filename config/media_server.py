"""uvicorn's WebSocket protocol with a short path for the media socket's audio frames.

Processes that carry many media sockets run uvicorn (see the README), with
``--ws config.media_server:MediaWebSocketProtocol``. Every live call's socket carries a
binary frame each way 50 times a second, and several of uvicorn's per-message costs are
general-purpose machinery this traffic does not need:

- **Sending**: uvicorn builds each frame through ``websockets``' frame objects (checks,
  extensions, a BytesIO). When nothing else can apply (the socket is open and writable,
  no extension such as permessage-deflate was negotiated, no fragmented message is under
  way), this protocol writes the frame header and the payload straight to the transport:
  the bytes on the wire are the same.
- **Parsing**: ``websockets``' parser runs each frame through several generators and a
  frame object. Once the upgrade is done, this protocol splits the byte stream into
  frames itself; a complete, masked, unfragmented binary frame (the media socket's audio)
  is unmasked and delivered to the app directly, and every other frame (text, ping, pong,
  close, fragments, anything malformed) is handed to ``websockets`` whole, so its parser
  always sees frame boundaries and enforces the protocol as before. A frame larger than
  the size limit, or an unmasked one, hands the rest of the stream to ``websockets``,
  which refuses it.
- **Receiving**: uvicorn stops reading the socket after every message until the app has
  taken it (two event-loop registrations per frame). Here reading pauses only when
  ``HIGH_WATER`` messages wait, and resumes once the app has taken them down to
  ``LOW_WATER``: memory stays bounded, and a slow app still pushes back on its client.
- **The receive queue**: an ``asyncio.Queue`` (task accounting, events, putters) becomes a
  deque with the waiting receivers' futures.
- **Delivering**: every queued message wakes the app's task, which resumes through each
  layer of the ASGI stack to take one frame. The protocol offers an ASGI extension,
  ``scope["extensions"]["switchboard.binary_receiver"]``: the app passes it a callable
  (``{"set": f}`` holds the setter: ``set(callback)``, ``set(None)`` to stop) and binary
  messages are then handed to ``callback(data)`` as they are parsed, whenever nothing is
  waiting in the queue (so they never overtake a text message the app has not taken
  yet). Text, close and disconnect messages still come through ``receive()``. A server
  without the extension simply delivers everything through ``receive()``. The other way,
  ``scope["extensions"]["switchboard.binary_sender"]["send"](data)`` writes a binary
  message at once and returns True when the short sending path applies (False: send it
  as a ``websocket.send`` message instead), sparing the message and the coroutine.

Everything else (text frames, close, pings, the handshake) goes through uvicorn unchanged.
The class relies on uvicorn's and websockets' internals: ``pyproject.toml`` bounds their
versions and ``tests/test_media_server.py`` runs it over real sockets.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol,
)
from websockets.frames import apply_mask
from websockets.http11 import Request
from websockets.protocol import State

logger = logging.getLogger(__name__)

_FIN_BINARY = 0x82
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")

BINARY_RECEIVER = "switchboard.binary_receiver"
BINARY_SENDER = "switchboard.binary_sender"
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

    __slots__ = ("_waiters", "items")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()  # len(items) is what is waiting
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self.items)

    def empty(self) -> bool:
        return not self.items

    def put_nowait(self, item: Any) -> None:
        self.items.append(item)
        if self._waiters:
            self._wake_one()

    async def get(self) -> Any:
        items = self.items
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
        # Frames are split here once the upgrade is done (see the module's docstring).
        self._framing = False
        self._clean_upgrade = False
        self._unparsed = bytearray()
        self._binary_receiver: Callable[[bytes], None] | None = None

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][BINARY_RECEIVER] = {"set": self._set_binary_receiver}
            scope["extensions"][BINARY_SENDER] = {"send": self.send_binary_now}

    def _set_binary_receiver(self, callback: Callable[[bytes], None] | None) -> None:
        self._binary_receiver = callback

    def _deliver_binary(self, data: bytes) -> None:
        receiver = self._binary_receiver
        queue = self.queue
        if receiver is not None and not queue.items:
            try:
                receiver(data)
            except Exception:
                logger.exception("The binary receiver of a WebSocket failed")
            return
        queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused and len(queue.items) >= HIGH_WATER:
            self.read_paused = True
            self.transport.pause_reading()

    # ------------------------------------------------------------ receiving
    def data_received(self, data: bytes) -> None:
        if self._framing:
            self._split_frames(data)
            return
        initiated = self.handshake_initiated
        super().data_received(data)
        # Frames may be split here only if nothing followed the upgrade request before
        # the app accepted (clients must wait for the 101 response before sending).
        self._clean_upgrade = (
            not initiated and self.handshake_initiated and data.endswith(b"\r\n\r\n")
        )

    def _split_frames(self, data: bytes) -> None:
        buf = self._unparsed
        buf += data
        end = len(buf)
        pos = 0
        conn = self.conn
        limit = conn.max_message_size
        while end - pos >= 2:
            head1 = buf[pos]
            head2 = buf[pos + 1]
            length = head2 & 0x7F
            start = pos + 2
            if length == 126:
                if end - start < 2:
                    break
                length = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif length == 127:
                if end - start < 8:
                    break
                length = int.from_bytes(buf[start : start + 8], "big")
                start += 8
            if not head2 & 0x80 or (limit is not None and length > limit):
                # Unmasked, or too large: websockets refuses it (and closes).
                self._stop_splitting(pos)
                return
            frame_end = start + 4 + length
            if frame_end > end:
                break
            if (
                head1 == 0x82  # FIN, binary, no RSV bits
                and conn.state is State.OPEN
                and conn.current_size is None
                and not self.frames
                and not self.close_sent
            ):
                self._deliver_binary(
                    apply_mask(buf[start + 4 : frame_end], buf[start : start + 4])
                )
            else:
                conn.receive_data(bytes(buf[pos:frame_end]))
                if conn.parser_exc is not None:
                    buf.clear()
                    self._framing = False
                    self.handle_parser_exception()
                    return
                self.handle_events()
            pos = frame_end
        del buf[:pos]

    def _stop_splitting(self, pos: int) -> None:
        """Hand the stream from ``pos`` on to websockets for good."""
        rest = bytes(self._unparsed[pos:])
        self._unparsed.clear()
        self._framing = False
        super().data_received(rest)

    def send_receive_event_to_app(self) -> None:
        frames = self.frames
        if self.curr_msg_data_type != "bytes" or len(frames) != 1 or self.close_sent:
            super().send_receive_event_to_app()
            return
        self.frames = []
        self._deliver_binary(frames[0])

    async def receive(self) -> Any:
        queue = self.queue
        message = await queue.get()
        if self.read_paused and len(queue.items) <= LOW_WATER:
            self.read_paused = False
            self.transport.resume_reading()
        return message

    def send_binary_now(self, data: bytes) -> bool:
        """Write a binary message now if nothing stands in the way; say whether it did."""
        conn = self.conn
        if (
            self.handshake_complete
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
            return True
        return False

    async def send(self, message: Any) -> None:
        data = message.get("bytes")
        if (
            data is not None
            and message["type"] == "websocket.send"
            and self.send_binary_now(data)
        ):
            return
        await super().send(message)
        if (
            message["type"] == "websocket.accept"
            and self._clean_upgrade
            and self.handshake_complete
            and not self.close_sent
            and not self.conn.reader.buffer
        ):
            self._framing = True
