"""One dial-out stream, live: fed by the media clock, drained to the receiver's socket.

``StreamWorker`` is a runtime subscriber (and, for a twoway stream, an outbound source).
Its ``on_media`` runs on the media clock: it only encodes the tick's audio and appends
the frames to a bounded queue, never awaiting, touching the database or logging. A
sender task per stream drains the queue to the WebSocket; what a slow or gone receiver
cannot take is dropped and counted, so no receiver ever delays the clock or another
stream. A receiver task reads the receiver's ``media``/``mark``/``clear``; twoway audio
enters the call through a bounded playout buffer whose marks are echoed when played.

The worker knows nothing of Django: state changes, counters and hanging up go through
its ``WorkerHost`` (see ``streams.live``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection, connect

from audio import FRAME_SAMPLES, SAMPLE_RATE
from audio.codecs import InvalidPcm
from audio.playout import PlayoutBuffer
from streams import targets
from streams.formats import TrackDecoder, TrackEncoder, chunks_in
from streams.protocol import (
    DIALECTS,
    ClearIn,
    Invalid,
    MarkIn,
    MediaIn,
    StreamIdentity,
    parse_incoming,
)
from streams.signing import HEADER as SIGNATURE_HEADER
from streams.signing import handshake_signature

logger = logging.getLogger(__name__)

USER_AGENT = "Switchboard-Streams/1.0"

# States, as stored on the Stream model.
PENDING = "pending"
CONNECTING = "connecting"
STREAMING = "streaming"
STOPPED = "stopped"
FAILED = "failed"

# Reasons carried by state changes and their events.
CONNECTED = "connected"
RECONNECTED = "reconnected"
REQUESTED = "requested"
CALL_ENDED = "call_ended"
REMOTE_CLOSED = "remote_closed"
CONNECT_FAILED = "connect_failed"
TARGET_REFUSED = "target_refused"
INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class StreamOptions:
    url: str
    headers: dict[str, str]
    on_disconnect: str
    dialect: str
    signing_secret: str


@dataclass(frozen=True)
class WorkerConfig:
    connect_timeout_s: float = 5.0
    connect_attempts: int = 4
    backoff_s: float = 0.5
    send_queue_ms: int = 2000
    playout_capacity_ms: int = 10_000
    stats_interval_s: float = 2.0
    drain_timeout_s: float = 1.0
    resample_quality: str = "steady"
    allow_private: bool = False
    max_message_bytes: int = 1 << 20


class WorkerHost(Protocol):
    """What a worker needs from the process hosting its call."""

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...

    def attach(self, worker: StreamWorker) -> None:
        """Start feeding the worker media (and, twoway, reading its audio)."""

    def detach(self, worker: StreamWorker) -> None: ...

    async def transition(self, worker: StreamWorker, state: str, reason: str) -> bool:
        """Record a state change; False if the stream already ended elsewhere."""

    async def save_counters(self, worker: StreamWorker) -> None: ...

    def hang_up(self, worker: StreamWorker) -> None:
        """End the call (``onDisconnect: hangup``)."""


class _Stopping(Exception):
    pass


class StreamWorker:
    def __init__(
        self,
        identity: StreamIdentity,
        options: StreamOptions,
        config: WorkerConfig,
        host: WorkerHost,
    ) -> None:
        self.identity = identity
        self.options = options
        self.config = config
        self.host = host
        self.stream_id = identity.stream_id
        self.twoway = identity.type == "twoway"
        self.format = identity.format
        self.dialect = DIALECTS[options.dialect](identity)
        self.tracks = identity.tracks
        self.state = PENDING
        self.reason = ""
        self.last_error = ""
        self.frames_sent = 0
        self.frames_received = 0
        self.frames_dropped = 0
        self.protocol_errors = 0
        self.reconnects = 0

        quality = config.resample_quality
        self._encoders = {
            track: TrackEncoder(self.format, quality=quality) for track in self.tracks
        }
        self._next_index = dict.fromkeys(self.tracks, 0)
        self._chunks = dict.fromkeys(self.tracks, 0)
        self._queue: deque[tuple[bool, str]] = deque()
        self._queued_media = 0
        self._queue_cap = max(1, config.send_queue_ms // 20) * len(self.tracks)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._draining = False
        self._epoch = False
        self._streaming = False
        self._reconnecting = False
        self._ticks = 0
        self.buffer: PlayoutBuffer | None = None
        self._decoder: TrackDecoder | None = None
        if self.twoway:
            self.buffer = PlayoutBuffer(
                config.playout_capacity_ms * SAMPLE_RATE // 1000
            )
            self._decoder = TrackDecoder(self.format, quality=quality)
        self.task: asyncio.Task[Any] | None = None
        self.finished = asyncio.Event()

    # ------------------------------------------------------------ the media clock's side
    def on_dtmf(self, digit: str, duration_ms: int) -> None:
        """A key the peer pressed: a ``dtmf`` message in the stream's dialect."""
        if self._streaming:
            self._send_control(self.dialect.dtmf(digit, duration_ms))

    def on_media(self, inbound: np.ndarray, outbound: np.ndarray) -> None:
        """MediaSubscriber: encode this tick's tracks and queue them (never blocks)."""
        if not self._epoch:
            return
        self._ticks += 1
        if not self._streaming:
            if self._reconnecting:
                # The receiver misses this audio; timestamps keep counting.
                self.frames_dropped += len(self.tracks)
            return
        queue = self._queue
        dialect = self.dialect
        for track in self.tracks:
            frame = inbound if track == "inbound" else outbound
            for payload in self._encoders[track].encode(frame):
                index = self._next_index[track]
                self._next_index[track] = index + 1
                if self._queued_media >= self._queue_cap:
                    self.frames_dropped += 1
                    continue
                chunk = self._chunks[track] + 1
                self._chunks[track] = chunk
                queue.append(
                    (
                        True,
                        dialect.media(
                            track,
                            chunk,
                            index * 20,
                            base64.b64encode(payload).decode("ascii"),
                        ),
                    )
                )
                self._queued_media += 1
        self._wake.set()

    def read_into(self, out: np.ndarray) -> int:
        """OutboundSource (twoway): the receiver's next 20 ms for the peer."""
        buffer = self.buffer
        if buffer is None:
            out.fill(0.0)
            return 0
        count = buffer.read_into(out)
        if buffer.has_marks:
            for name, _position in buffer.pop_played_marks():
                self._send_control(self.dialect.mark(name))
        return count

    def _send_control(self, text: str) -> None:
        """Queue a control frame (mark, stop): never dropped, kept in order."""
        self._queue.append((False, text))
        self._wake.set()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Begin connecting (once): media is flowing in the call."""
        if self.task is None and not self._stop.is_set():
            self.host.attach(self)
            self.task = self.host.spawn(self.run())

    def request_stop(self, reason: str) -> None:
        """Ask the stream to stop: it sends `stop`, closes and records ``reason``."""
        if self._stop.is_set():
            return
        self._stop_reason = reason
        self._stop.set()
        if self.task is None:
            self.task = self.host.spawn(self._stop_unstarted())

    async def _stop_unstarted(self) -> None:
        try:
            await self._set_state(STOPPED, self._stop_reason)
        finally:
            self.host.detach(self)
            self.finished.set()

    async def wait_finished(self, within_s: float) -> None:
        """Wait (at most ``within_s``) until the stream has stopped and said so."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.finished.wait(), within_s)

    async def _set_state(self, state: str, reason: str) -> bool:
        self.state, self.reason = state, reason
        return await self.host.transition(self, state, reason)

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("Stream %s failed", self.stream_id)
            self.last_error = f"internal error: {exc!r:.200}"
            with contextlib.suppress(Exception):
                await self._set_state(FAILED, INTERNAL_ERROR)
        finally:
            self._streaming = False
            self.host.detach(self)
            self.finished.set()

    async def _run(self) -> None:
        attempts = 0
        first = True
        while True:
            if self._stop.is_set():
                await self._set_state(STOPPED, self._stop_reason)
                return
            if self.state != CONNECTING and not await self._set_state(CONNECTING, ""):
                return  # the stream ended elsewhere (stopped through the API, reaped)
            try:
                ws = await self._open()
            except _Stopping:
                continue
            except targets.TargetRefused as exc:
                self.last_error = str(exc)
                await self._set_state(FAILED, TARGET_REFUSED)
                return
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                attempts += 1
                self.last_error = _describe(exc)
                if attempts >= self.config.connect_attempts:
                    await self._set_state(FAILED, CONNECT_FAILED)
                    return
                delay = self.config.backoff_s * 2 ** (attempts - 1)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                continue
            attempts = 0
            if not first:
                self.reconnects += 1
            remote_closed = await self._session(ws, reconnect=not first)
            first = False
            if not remote_closed:
                await self._set_state(STOPPED, self._stop_reason)
                return
            if self._reconnecting:
                continue
            if self._stop.is_set():
                await self._set_state(STOPPED, self._stop_reason)
                return
            await self._set_state(STOPPED, REMOTE_CLOSED)
            if self.options.on_disconnect == "hangup":
                self.host.hang_up(self)
            return

    async def _open(self) -> ClientConnection:
        """Connect (headers, signature, a vetted address), unless a stop comes first."""
        url = self.options.url
        timestamp = int(time.time())
        headers = list(self.options.headers.items())
        headers += [
            (
                SIGNATURE_HEADER,
                handshake_signature(self.options.signing_secret, url, timestamp),
            ),
            ("X-Switchboard-Stream-Id", self.identity.stream_id),
            ("X-Switchboard-Call-Id", self.identity.call_id),
        ]
        kwargs: dict[str, Any] = {}
        if not self.config.allow_private:
            parts = targets.parse(url, ("ws", "wss"))
            kwargs["host"] = await targets.resolve_public(parts)
            kwargs["port"] = targets.default_port(parts)
        opening = asyncio.ensure_future(
            connect(
                url,
                additional_headers=headers,
                user_agent_header=USER_AGENT,
                compression=None,
                open_timeout=self.config.connect_timeout_s,
                close_timeout=2,
                max_size=self.config.max_message_bytes,
                proxy=None,
                **kwargs,
            )
        )
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not opening.done():
            opening.cancel()
            with contextlib.suppress(BaseException):
                await opening
            raise _Stopping
        return opening.result()

    async def _session(self, ws: ClientConnection, *, reconnect: bool) -> bool:
        """Stream over one connection; True if the receiver went away first."""
        self._discard_queue()
        self._draining = False
        self.dialect.begin()
        self._send_control(self.dialect.connected())
        self._send_control(self.dialect.start(reconnect=reconnect))
        for track in self.tracks:
            self._encoders[track].reset()
            self._next_index[track] = self._ticks
            self._chunks[track] = 0
        if self.buffer is not None and self._decoder is not None:
            self.buffer.clear()
            self._decoder.reset()
        self._epoch = True
        self._reconnecting = False
        self._streaming = True
        sender = asyncio.ensure_future(self._send_loop(ws))
        receiver = asyncio.ensure_future(self._receive_loop(ws))
        stopping = asyncio.ensure_future(self._stop.wait())
        tasks = {sender, receiver, stopping}
        try:
            if not await self._set_state(
                STREAMING, RECONNECTED if reconnect else CONNECTED
            ):
                # Stopped elsewhere meanwhile: say goodbye politely all the same.
                self._stop_reason = self._stop_reason or REQUESTED
                self._stop.set()
            while True:
                done, _ = await asyncio.wait(
                    tasks,
                    timeout=self.config.stats_interval_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if done:
                    break
                await self.host.save_counters(self)
            # From this tick on the receiver misses audio if it is to be reopened.
            self._reconnecting = (
                stopping not in done and self.options.on_disconnect == "reconnect"
            )
            self._streaming = False
            if stopping in done:
                receiver.cancel()
                await self._finish_politely(ws, sender)
                return False
            failure = sender.exception() if sender in done else None
            if failure is not None and not isinstance(
                failure, websockets.ConnectionClosed
            ):
                self.last_error = _describe(failure)
            else:
                self.last_error = _close_description(ws)
            return True
        finally:
            self._streaming = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._discard_queue()
            if self.buffer is not None:
                self.buffer.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)

    async def _finish_politely(
        self, ws: ClientConnection, sender: asyncio.Future[Any]
    ) -> None:
        """Send what is queued and `stop`, then close 1000 (briefly, then anyway)."""
        if self.buffer is not None:
            # Marks that will now never play are answered as cleared.
            for name in self.buffer.clear():
                self._send_control(self.dialect.mark(name, cleared=True))
        self._send_control(self.dialect.stop(self._stop_reason))
        self._draining = True
        self._wake.set()
        if not sender.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.shield(sender), self.config.drain_timeout_s
                )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(1000, "stream stopped"), 2)

    def _discard_queue(self) -> None:
        self.frames_dropped += self._queued_media
        self._queued_media = 0
        self._queue.clear()

    async def _send_loop(self, ws: ClientConnection) -> None:
        queue = self._queue
        wake = self._wake
        while True:
            while queue:
                is_media, text = queue.popleft()
                if not is_media:
                    await ws.send(text)
                    continue
                self._queued_media -= 1
                try:
                    await ws.send(text)
                except BaseException:
                    self.frames_dropped += 1  # taken from the queue, never delivered
                    raise
                self.frames_sent += 1
            if self._draining:
                return
            wake.clear()
            if not queue:
                await wake.wait()

    async def _receive_loop(self, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                if isinstance(message, str):
                    self.handle_text(message)
                else:
                    self._protocol_error("a binary frame; frames are JSON text")

    # ------------------------------------------------------------ the receiver's side
    def handle_text(self, text: str) -> None:
        """Apply one frame from the receiver: media, mark or clear; else count an error."""
        message = parse_incoming(text, self.identity.own_ids)
        if isinstance(message, MediaIn):
            self._receive_media(message.payload)
        elif isinstance(message, MarkIn):
            self._receive_mark(message.name)
        elif isinstance(message, ClearIn):
            self._receive_clear()
        elif isinstance(message, Invalid):
            self._protocol_error(f"received {message.reason}")

    def _protocol_error(self, description: str) -> None:
        self.protocol_errors += 1
        self.last_error = description

    def _receive_media(self, payload: bytes) -> None:
        buffer, decoder = self.buffer, self._decoder
        if buffer is None or decoder is None:
            self._protocol_error("received media on a oneway stream (ignored)")
            return
        try:
            samples = decoder.decode(payload)
        except InvalidPcm as exc:
            self._protocol_error(
                f"received media that is not {self.format.name}: {exc}"
            )
            return
        self.frames_received += chunks_in(self.format, len(payload))
        self._write(samples)

    def _write(self, samples: np.ndarray) -> None:
        assert self.buffer is not None
        accepted = self.buffer.write(samples)
        if accepted < len(samples):
            self.frames_dropped += math.ceil((len(samples) - accepted) / FRAME_SAMPLES)
            self.last_error = (
                f"playout buffer full ({self.config.playout_capacity_ms} ms); "
                "audio dropped"
            )

    def _receive_mark(self, name: str) -> None:
        if self.buffer is None or self._decoder is None:
            # Nothing of a oneway stream plays: the mark has played already.
            self._send_control(self.dialect.mark(name))
            return
        tail = self._decoder.flush()
        if len(tail):
            self._write(tail)
        self.buffer.add_mark(name)

    def _receive_clear(self) -> None:
        if self.buffer is None or self._decoder is None:
            return
        self._decoder.reset()
        for name in self.buffer.clear():
            self._send_control(self.dialect.mark(name, cleared=True))

    # ------------------------------------------------------------ reporting
    def counters(self) -> dict[str, Any]:
        return {
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "frames_dropped": self.frames_dropped,
            "protocol_errors": self.protocol_errors,
            "reconnects": self.reconnects,
            "last_error": self.last_error[:500],
        }


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    if isinstance(exc, websockets.InvalidStatus):
        return (
            f"the receiver answered the handshake with HTTP {exc.response.status_code}"
        )
    if isinstance(exc, TimeoutError):
        return "timed out opening the connection"
    text = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"[:500]


def _close_description(ws: ClientConnection) -> str:
    protocol = ws.protocol
    sent = protocol.close_sent
    if sent is not None and protocol.close_rcvd_then_sent is not True:
        # Closed from this side first: the receiver broke the protocol (1009 for a
        # message over STREAM_MAX_MESSAGE_BYTES) or stopped answering pings (1011).
        words = _close_words(sent.code, sent.reason)
        return f"Switchboard closed the connection ({words})"
    code = ws.close_code
    if code is None:
        return "the receiver's connection was lost"
    words = _close_words(code, ws.close_reason)
    return f"the receiver closed the connection ({words})"


def _close_words(code: int, reason: str | None) -> str:
    return f"{code} {reason}" if reason else str(code)
