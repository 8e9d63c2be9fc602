"""The live media socket of a call: the peer's audio in, yours out, with backpressure.

::

    async with client.media(session_id, call_id) as media:
        await media.send_audio(samples)          # Float32 16 kHz mono; waits on `buffer`
        played = await media.mark("greeting")    # a future, done when it has played
        async for event in media:                # AudioFrame, Mark, BufferStatus, …
            ...

Open it with the call's snapshot (``client.media(call)``) and it connects to the
snapshot's ``mediaUrl``: the server process that hosts the call, where its audio never
crosses processes. A socket that lands on another process anyway is still served (bridged
to the host), and its ``ready`` says where the call lives (``reconnect.mediaUrl``): the
socket follows that once, before ``connect`` returns, unless ``follow_reconnect=False``.

The server sends ``ready`` first (``media.ready``), then the peer's audio in 20 ms
binary frames (``AudioFrame``: 320 samples, 1280 bytes of Float32LE) and JSON messages
(``BufferStatus``, ``CallStateChanged``, ``Mark``, ``Dtmf``, ``MediaError``, ``Ended``).
Iteration ends when the socket closes (after ``Ended`` when the call ends).

Backpressure: audio you send waits in the server's playout buffer (10 s at most) and is
played at real time. The server reports the buffer's depth in ``buffer`` messages when it
crosses ``pauseMs`` (500) going up and ``resumeMs`` (250) going down, and every 200 ms
while audio waits. ``send_audio`` keeps an estimate of the buffer between reports (what
it sent, less what has played since) and waits whenever the server, or that estimate,
is at ``pauseMs``, until the buffer is back at ``resumeMs``: you may hand it minutes of
audio at once and nothing is ever dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import websockets
from websockets.asyncio.client import ClientConnection, connect

from switchboard_sdk._errors import MediaSocketClosed, SwitchboardError
from switchboard_sdk._http import USER_AGENT
from switchboard_sdk.audio import (
    BYTES_PER_SAMPLE,
    SAMPLE_RATE,
    duration_ms,
    from_f32le,
    to_f32le,
)
from switchboard_sdk.types import Call

if TYPE_CHECKING:
    import array

    from switchboard_sdk.audio import Samples

# send_audio splits audio into binary frames of this much (the server takes up to 1 s):
# small enough that the buffer never runs far past pauseMs.
SEND_CHUNK_BYTES = SAMPLE_RATE // 5 * BYTES_PER_SAMPLE  # 200 ms
DEFAULT_MAX_QUEUED_EVENTS = 1500  # 30 s of audio frames


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """The peer's audio: Float32LE PCM, 16 kHz mono (20 ms, 1280 bytes, per frame)."""

    data: bytes

    @property
    def samples(self) -> array.array[float]:
        """The samples as an ``array.array('f')``."""
        return from_f32le(self.data)

    @property
    def duration_ms(self) -> float:
        return duration_ms(self.data)


@dataclass(frozen=True, slots=True)
class Ready:
    """The first message: the audio format both ways and the call's snapshot;
    ``reconnect_url`` when this socket is bridged to the process hosting the call
    (reconnecting there gives the direct path)."""

    media: dict[str, Any]
    call: Call
    reconnect_url: str | None = None


@dataclass(frozen=True, slots=True)
class BufferStatus:
    """The depth of the server's playout buffer of your audio."""

    buffered_ms: int
    pause_ms: int
    resume_ms: int
    capacity_ms: int


@dataclass(frozen=True, slots=True)
class CallStateChanged:
    call: Call


@dataclass(frozen=True, slots=True)
class Mark:
    """A mark you sent: played (``played_ms`` of your audio played so far) or
    ``cleared`` by a ``clear`` before it played."""

    name: str
    played_ms: int | None = None
    cleared: bool = False


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class MediaError:
    """The server refused a frame or message (the socket stays open), or explains a
    close: ``invalid_pcm_frame``, ``frame_too_large``, ``buffer_overflow``,
    ``invalid_message``, ``replaced``."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The call ended; the server closes the socket next."""

    call: Call


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message this SDK does not know (a newer server)."""

    message: dict[str, Any] = field(default_factory=dict)


MediaEvent = (
    AudioFrame
    | Ready
    | BufferStatus
    | CallStateChanged
    | Mark
    | Dtmf
    | MediaError
    | Ended
    | UnknownMessage
)


def parse_message(message: dict[str, Any]) -> MediaEvent:
    """The event of one JSON message from the server."""
    kind = message.get("type")
    if kind == "ready":
        reconnect = message.get("reconnect")
        return Ready(
            media=message.get("media") or {},
            call=cast(Call, message.get("call") or {}),
            reconnect_url=str(reconnect["mediaUrl"])
            if isinstance(reconnect, dict) and reconnect.get("mediaUrl")
            else None,
        )
    if kind == "buffer":
        return BufferStatus(
            buffered_ms=int(message["bufferedMs"]),
            pause_ms=int(message["pauseMs"]),
            resume_ms=int(message["resumeMs"]),
            capacity_ms=int(message["capacityMs"]),
        )
    if kind == "call_state":
        return CallStateChanged(call=cast(Call, message.get("call") or {}))
    if kind == "mark":
        played = message.get("playedMs")
        return Mark(
            name=str(message.get("name")),
            played_ms=int(played) if played is not None else None,
            cleared=bool(message.get("cleared", False)),
        )
    if kind == "dtmf":
        return Dtmf(
            digit=str(message.get("digit")),
            duration_ms=int(message.get("durationMs") or 0),
        )
    if kind == "error":
        return MediaError(
            code=str(message.get("code")), message=str(message.get("message", ""))
        )
    if kind == "ended":
        return Ended(call=cast(Call, message.get("call") or {}))
    return UnknownMessage(message)


# ---------------------------------------------------------------- backpressure


class Backpressure:
    """The sender's view of the server's playout buffer, from ``buffer`` reports and
    from what was sent since (less what has played at real time since)."""

    def __init__(
        self,
        *,
        pause_ms: int = 500,
        resume_ms: int = 250,
        capacity_ms: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pause_ms = pause_ms
        self.resume_ms = resume_ms
        self.capacity_ms = capacity_ms
        self.server_paused = False  # the server's last word was "at pauseMs"
        self.local_paused = False  # our estimate reached pauseMs
        self.closed = False
        self.max_reported_ms = 0
        self._clock = clock
        self._level_ms = 0.0
        self._level_at = clock()
        self._changed = asyncio.Event()

    @property
    def paused(self) -> bool:
        return self.server_paused or self.local_paused

    def buffered_ms(self) -> float:
        """The estimated depth now: the last level, drained at real time since."""
        elapsed_ms = (self._clock() - self._level_at) * 1000
        return max(0.0, self._level_ms - elapsed_ms)

    def report(self, status: BufferStatus) -> None:
        """Take a ``buffer`` report from the server."""
        self.pause_ms, self.resume_ms = status.pause_ms, status.resume_ms
        self.capacity_ms = status.capacity_ms
        self.max_reported_ms = max(self.max_reported_ms, status.buffered_ms)
        self._level_ms, self._level_at = float(status.buffered_ms), self._clock()
        if status.buffered_ms >= status.pause_ms:
            self.server_paused = True
        elif status.buffered_ms <= status.resume_ms:
            self.server_paused = self.local_paused = False
        self._changed.set()

    def sent(self, ms: float) -> None:
        """Count audio just sent."""
        self._level_ms, self._level_at = self.buffered_ms() + ms, self._clock()
        if self._level_ms >= self.pause_ms:
            self.local_paused = True

    def cleared(self) -> None:
        """The buffer was cleared (``clear``): nothing waits any more."""
        self._level_ms, self._level_at = 0.0, self._clock()
        self.server_paused = self.local_paused = False
        self._changed.set()

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    async def wait(self) -> None:
        """Return when more audio may be sent (or the socket closed)."""
        while not self.closed:
            timeout: float | None
            if self.server_paused:
                # Only the server says when it is back at resumeMs: it reports that.
                timeout = None
            elif self.local_paused:
                left_ms = self.buffered_ms() - self.resume_ms
                if left_ms <= 0:
                    self.local_paused = False
                    continue
                timeout = left_ms / 1000
            else:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)


# ---------------------------------------------------------------- the socket


class MediaSocket:
    """A call's live media socket (DESIGN §5). Use with ``async with``."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        open_timeout: float = 10.0,
        max_queued_events: int = DEFAULT_MAX_QUEUED_EVENTS,
        backpressure: bool = True,
        follow_reconnect: bool = True,
    ) -> None:
        self.url = url
        self.ready: Ready | None = None
        self.call: Call | None = None
        self.ended = False
        self.errors: list[MediaError] = []
        self.dropped_events = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.pressure = Backpressure()
        self._api_key = api_key
        self._open_timeout = open_timeout
        self._max_queued = max_queued_events
        self._backpressure = backpressure
        self._follow_reconnect = follow_reconnect
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._events: deque[MediaEvent | None] = deque()
        self._available = asyncio.Event()
        self._first = asyncio.Event()
        self._marks: dict[str, deque[asyncio.Future[Mark]]] = {}
        self._send_lock = asyncio.Lock()
        self._clears = 0  # send_audio stops early when a clear comes in meanwhile

    async def __aenter__(self) -> MediaSocket:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the socket and wait for its first message (``ready``, or ``ended``)."""
        self._ws = await self._dial(self.url)
        if self._follow_reconnect:
            try:
                await self._take_first_message()
            except BaseException:
                await self._ws.close()
                raise
        self._reader = asyncio.get_running_loop().create_task(self._read())
        try:
            await asyncio.wait_for(self._first.wait(), self._open_timeout)
        except BaseException:
            await self.close()
            raise

    async def _take_first_message(self) -> None:
        """Read the first message; a ``ready`` saying the call lives in another process
        (``reconnect.mediaUrl``) moves this socket there, once. If that fails, the
        socket stays where it is: bridged, it works all the same."""
        assert self._ws is not None
        try:
            first = self._event_of(
                await asyncio.wait_for(self._ws.recv(), self._open_timeout)
            )
        except websockets.ConnectionClosed:
            return  # the reader sees the close
        url = first.reconnect_url if isinstance(first, Ready) else None
        if url and url != self.url:
            try:
                moved = await self._dial(url)
            except (
                OSError,
                TimeoutError,
                SwitchboardError,
                websockets.WebSocketException,
            ):
                pass
            else:
                await self._ws.close()
                self._ws, self.url = moved, url
                return
        if first is not None:
            self._push(self._handle(first))

    async def _dial(self, url: str) -> ClientConnection:
        try:
            return await connect(
                url,
                additional_headers={"Authorization": f"Bearer {self._api_key}"},
                user_agent_header=USER_AGENT,
                compression=None,
                max_size=2**20,
                open_timeout=self._open_timeout,
            )
        except websockets.InvalidStatus as refused:
            status = refused.response.status_code
            raise SwitchboardError(
                status,
                "media_socket_refused",
                "Media socket refused",
                "The server refused the media socket: a missing or revoked key, or a "
                "call this key's environment does not have.",
                request_id=refused.response.headers.get("X-Request-Id"),
            ) from refused

    async def close(self) -> None:
        """Close the socket (the call goes on; connect again to continue)."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    # ------------------------------------------------------------ receiving
    def __aiter__(self) -> MediaSocket:
        return self

    async def __anext__(self) -> MediaEvent:
        while not self._events:
            self._available.clear()
            await self._available.wait()
        event = self._events.popleft()
        if event is None:
            self._events.append(None)  # stay finished
            raise StopAsyncIteration
        return event

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                event = self._event_of(message)
                if isinstance(event, AudioFrame):
                    self._push(event)
                elif event is not None:
                    self._push(self._handle(event))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self._ws.close_code
            self.close_reason = self._ws.close_reason or ""
            self.pressure.close()
            for waiting in self._marks.values():
                for future in waiting:
                    if not future.done():
                        future.set_exception(
                            MediaSocketClosed(self.close_code, self.close_reason)
                        )
                        future.exception()  # nobody may await it: no warning then
            self._marks.clear()
            self._first.set()
            self._events.append(None)
            self._available.set()

    @staticmethod
    def _event_of(message: str | bytes) -> MediaEvent | None:
        if isinstance(message, bytes):
            return AudioFrame(message)
        try:
            parsed = json.loads(message)
        except ValueError:
            return None
        return parse_message(parsed) if isinstance(parsed, dict) else None

    def _handle(self, event: MediaEvent) -> MediaEvent:
        if isinstance(event, BufferStatus):
            self.pressure.report(event)
        elif isinstance(event, Mark):
            waiting = self._marks.get(event.name)
            if waiting:
                future = waiting.popleft()
                if not future.done():
                    future.set_result(event)
        elif isinstance(event, Ready):
            self.ready, self.call = event, event.call
            self._first.set()
        elif isinstance(event, CallStateChanged):
            self.call = event.call
        elif isinstance(event, Ended):
            self.ended, self.call = True, event.call
            self._first.set()
        elif isinstance(event, MediaError):
            self.errors.append(event)
        return event

    def _push(self, event: MediaEvent) -> None:
        if len(self._events) >= self._max_queued:
            # Nobody is reading: let the oldest audio go, never a message.
            for index, queued in enumerate(self._events):
                if isinstance(queued, AudioFrame):
                    del self._events[index]
                    self.dropped_events += 1
                    break
        self._events.append(event)
        self._available.set()

    # ------------------------------------------------------------ sending
    def _open(self) -> ClientConnection:
        if self._ws is None or self.pressure.closed:
            raise MediaSocketClosed(self.close_code, self.close_reason)
        return self._ws

    async def send_audio(self, samples: Samples) -> None:
        """Send audio for the peer (Float32 samples at 16 kHz, or their Float32LE bytes).

        Any length: it goes out in 200 ms frames, each waiting while the server's
        playout buffer is at ``pauseMs`` (unless backpressure was turned off). A
        ``clear()`` meanwhile drops what this call has not sent yet, too.
        """
        data = to_f32le(samples)
        if len(data) % BYTES_PER_SAMPLE:
            raise ValueError("Float32LE audio is a whole number of 4-byte samples")
        clears = self._clears
        # One sender at a time, so two tasks' audio never interleaves mid-utterance.
        async with self._send_lock:
            for offset in range(0, len(data), SEND_CHUNK_BYTES):
                chunk = data[offset : offset + SEND_CHUNK_BYTES]
                if self._backpressure:
                    await self.pressure.wait()
                if self._clears != clears:
                    return
                try:
                    await self._open().send(chunk)
                except websockets.ConnectionClosed as closed:
                    raise MediaSocketClosed(
                        self.close_code, self.close_reason
                    ) from closed
                self.pressure.sent(duration_ms(chunk))

    async def mark(self, name: str) -> asyncio.Future[Mark]:
        """Mark the end of the audio sent so far; the returned future completes with the
        ``Mark`` when that audio has been played to the peer (or was cleared first).
        The ``Mark`` also arrives as an event."""
        future: asyncio.Future[Mark] = asyncio.get_running_loop().create_future()
        self._marks.setdefault(name, deque()).append(future)
        await self._send_json({"type": "mark", "name": name})
        return future

    async def clear(self) -> None:
        """Barge-in: drop the audio still waiting in the server's buffer, at once."""
        self._clears += 1
        await self._send_json({"type": "clear"})
        self.pressure.cleared()

    async def _send_json(self, message: dict[str, Any]) -> None:
        try:
            await self._open().send(json.dumps(message))
        except websockets.ConnectionClosed as closed:
            raise MediaSocketClosed(self.close_code, self.close_reason) from closed
