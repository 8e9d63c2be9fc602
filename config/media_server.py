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

The class (``FastMediaWebSocketProtocol``) relies on uvicorn's and websockets' internals,
so (``docs/media-server.md``):

- ``pyproject.toml`` and ``requirements.lock`` pin both packages exactly;
- ``MediaWebSocketProtocol`` is chosen when uvicorn first loads it: this class if
  ``media_protocol_self_check()`` finds the pinned versions and the internals it expects,
  else uvicorn's stock ``WebSocketsSansIOProtocol`` (no short paths, no extensions), with
  one logged warning naming what differed;
- ``.ci/check-server-upgrades`` reports whether the newest releases still pass the
  self-check and ``tests/test_media_server.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from collections import deque
from collections.abc import Callable
from importlib import metadata
from typing import Any

from websockets.frames import apply_mask
from websockets.http11 import Request
from websockets.protocol import State

from config.env import Env

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol,
    )
except ImportError as exc:  # the self-check reports it; uvicorn's default serves
    _MISSING_BASE: str | None = f"uvicorn's WebSocketsSansIOProtocol is gone ({exc})"
    from uvicorn.protocols.websockets.auto import (  # type: ignore[assignment]
        AutoWebSocketsProtocol as WebSocketsSansIOProtocol,
    )
else:
    _MISSING_BASE = None

logger = logging.getLogger(__name__)

# The releases this module was written and measured against: pinned with ``==`` in
# pyproject.toml and requirements.lock (a test keeps the three in step).
UVICORN_VERSION = "0.55.0"
WEBSOCKETS_VERSION = "17.4"
# Set to 1 to skip only the version comparison (.ci/check-server-upgrades does, to see
# whether the internals of newer releases still fit).
ANY_VERSION_ENV = "SWITCHBOARD_MEDIA_PROTOCOL_ANY_VERSION"

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


class FastMediaWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O protocol with the short paths of the module's docstring."""

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


# ------------------------------------------------------------------- the self-check
# What FastMediaWebSocketProtocol overrides or calls on uvicorn's protocol, with the
# parameters it passes.
_UVICORN_METHODS: dict[str, tuple[str, ...]] = {
    "__init__": ("self", "config", "server_state", "app_state", "_loop"),
    "handle_connect": ("self", "event"),
    "handle_events": ("self",),
    "handle_parser_exception": ("self",),
    "data_received": ("self", "data"),
    "send_receive_event_to_app": ("self",),
    "receive": ("self",),
    "send": ("self", "message"),
}
_UVICORN_COROUTINES = {"receive", "send"}
# The state it reads or replaces on uvicorn's protocol, as uvicorn's __init__ leaves it.
_UVICORN_STATE: dict[str, type | tuple[type, ...]] = {
    "queue": asyncio.Queue,
    "frames": list,
    "curr_msg_data_type": str,
    "read_paused": bool,
    "handshake_initiated": bool,
    "handshake_complete": bool,
    "close_sent": bool,
    "disconnected": bool,
    "initial_response": type(None),
    "writable": asyncio.Event,
    "transport": object,
    "conn": object,  # websockets' protocol: checked next
}
# The state it reads on websockets' protocol (uvicorn's ``conn``) while splitting frames.
_WEBSOCKETS_STATE: dict[str, type | tuple[type, ...]] = {
    "max_message_size": (int, type(None)),
    "state": State,
    "current_size": type(None),
    "parser_exc": type(None),
    "extensions": list,
    "expect_continuation_frame": bool,
    "writes": list,
}


def media_protocol_self_check() -> list[str]:
    """List how the installed uvicorn and websockets differ from what
    FastMediaWebSocketProtocol relies on; an empty list means it can serve."""
    problems = [] if Env().bool(ANY_VERSION_ENV, False) else _version_problems()
    if _MISSING_BASE is not None:
        return [*problems, _MISSING_BASE]
    problems += _method_problems()
    try:
        protocol = _new_stock_protocol()
    except Exception as exc:
        problems.append(f"uvicorn's WebSocketsSansIOProtocol cannot be built: {exc!r}")
    else:
        problems += _state_problems(
            protocol, "WebSocketsSansIOProtocol", _UVICORN_STATE
        )
        conn = getattr(protocol, "conn", None)
        if conn is not None:
            problems += _conn_problems(conn)
    return problems + _websockets_problems()


def select_media_protocol() -> type[WebSocketsSansIOProtocol]:
    """Return FastMediaWebSocketProtocol if the self-check passes, else uvicorn's stock
    protocol, with one warning naming what differed."""
    problems = media_protocol_self_check()
    if not problems:
        return FastMediaWebSocketProtocol
    logger.warning(
        "Media sockets get uvicorn's stock WebSocket protocol, without the short path "
        "for audio frames: uvicorn or websockets is not what config/media_server.py "
        "was written for (%s). See docs/media-server.md.",
        "; ".join(problems),
    )
    return WebSocketsSansIOProtocol


def __getattr__(name: str) -> type[WebSocketsSansIOProtocol]:
    # MediaWebSocketProtocol is chosen when first asked for (uvicorn's --ws loads it),
    # not on import: processes that import only the constants above, such as Daphne's,
    # never run the check or log its warning.
    if name != "MediaWebSocketProtocol":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    protocol = globals()[name] = select_media_protocol()
    return protocol


def _version_problems() -> list[str]:
    problems = []
    for package, pinned in (
        ("uvicorn", UVICORN_VERSION),
        ("websockets", WEBSOCKETS_VERSION),
    ):
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            installed = "nothing"
        if installed != pinned:
            problems.append(f"{package} {installed} is installed, not {pinned}")
    return problems


def _parameters(function: Any) -> tuple[str, ...] | None:
    try:
        return tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return None


def _method_problems() -> list[str]:
    problems = []
    for name, expected in _UVICORN_METHODS.items():
        where = f"WebSocketsSansIOProtocol.{name}"
        method = getattr(WebSocketsSansIOProtocol, name, None)
        if method is None:
            problems.append(f"{where} is missing")
            continue
        # Inherited from asyncio.Protocol or object would mean uvicorn dropped its own.
        module = getattr(method, "__module__", None) or "elsewhere"
        if not module.startswith("uvicorn."):
            problems.append(f"{where} comes from {module}, not uvicorn")
            continue
        parameters = _parameters(method)
        if parameters != expected:
            problems.append(f"{where} takes {parameters}, not {expected}")
        if inspect.iscoroutinefunction(method) != (name in _UVICORN_COROUTINES):
            problems.append(f"{where} changed between def and async def")
    return problems


def _new_stock_protocol() -> WebSocketsSansIOProtocol:
    """An unconnected instance, built as uvicorn builds one, to look at its state."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    async def no_app(scope: Any, receive: Any, send: Any) -> None:  # never served
        return None

    config = Config(no_app, ws="none", lifespan="off", log_config=None)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        return WebSocketsSansIOProtocol(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()


def _state_problems(
    instance: object, owner: str, expected: dict[str, type | tuple[type, ...]]
) -> list[str]:
    problems = []
    absent = object()
    for name, kind in expected.items():
        value = getattr(instance, name, absent)
        if value is absent:
            problems.append(f"{owner} has no attribute {name}")
        elif not isinstance(value, kind):
            problems.append(f"{owner}.{name} is of type {type(value).__name__}")
    return problems


def _conn_problems(conn: object) -> list[str]:
    owner = f"websockets' {type(conn).__name__}"
    problems = _state_problems(conn, owner, _WEBSOCKETS_STATE)
    if _parameters(getattr(conn, "receive_data", None)) != ("data",):
        problems.append(f"{owner}.receive_data is missing or takes other parameters")
    if not isinstance(
        getattr(getattr(conn, "reader", None), "buffer", None), bytearray
    ):
        problems.append(f"{owner}.reader.buffer is missing or no longer a bytearray")
    return problems


def _websockets_problems() -> list[str]:
    problems = []
    if not isinstance(getattr(State, "OPEN", None), State):
        problems.append("websockets.protocol.State has no OPEN")
    # Called with slices of the read buffer; the app must get bytes.
    try:
        unmasked = apply_mask(
            bytearray(b"\x00\x01\x02\x03\x04"), bytearray(b"\x01\x02\x03\x04")
        )
    except Exception as exc:
        problems.append(f"websockets.frames.apply_mask fails on bytearrays: {exc!r}")
    else:
        if type(unmasked) is not bytes or unmasked != b"\x01\x03\x01\x07\x05":
            problems.append(f"websockets.frames.apply_mask returned {unmasked!r}")
    return problems
