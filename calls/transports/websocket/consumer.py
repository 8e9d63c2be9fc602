"""The live media socket (DESIGN §5).

``MediaConsumer`` is a Channels consumer with its own receive loop instead of Channels'
generic dispatch: a media socket receives 50 frames a second, and the generic path
(``await_many_dispatch`` plus closing stale database connections around every message)
costs a thread hop per frame (see PERF-NOTES). The database is touched at connect only.
Served by uvicorn with ``config.media_server.MediaWebSocketProtocol``, binary frames skip
the receive loop altogether: the protocol hands them to the media link as they arrive and
the link's frames are written without an ASGI message (the protocol's extensions).
Authorisation happens before ``accept``: a refused upgrade is answered with HTTP 403.
Clients authenticate with an API key; the dashboard's call console (a browser, which
cannot set headers on a WebSocket) with its login session, from an allowed origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any, Protocol
from urllib.parse import urlsplit

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from accounts.models import Environment
from calls import hosts
from calls.models import CallState
from calls.runtime.engine import Engine, ensure_engine
from calls.runtime.runtime import CallRuntime
from calls.snapshots import call_snapshot, hosted_media_url
from calls.transports.websocket.affinity import pointing_to_host
from calls.transports.websocket.bridge import SocketBridge
from calls.transports.websocket.link import MediaLink, attach, ready_frame
from config import shutdown
from config.errors import ApplicationError, Forbidden, Unauthenticated
from config.media_server import BINARY_RECEIVER, BINARY_SENDER

logger = logging.getLogger(__name__)

# A slow client gets at most this many 20 ms frames queued; older audio is dropped.
MAX_QUEUED_AUDIO_FRAMES = 50
# "Service restart": the process is stopping, the call goes on elsewhere: reconnect.
CLOSE_SERVICE_RESTART = 1012


class MediaInput(Protocol):
    """Where a socket's frames go: a local MediaLink or the bridge to another process."""

    def push_audio(self, data: bytes) -> None: ...

    def handle_text(self, text: str) -> None: ...


def _same_origin(headers: dict[bytes, bytes]) -> bool:
    """Browsers send Origin; it must be this site or a trusted origin (CSRF_TRUSTED_ORIGINS)."""
    origin = headers.get(b"origin", b"").decode("latin-1")
    if not origin:
        return False
    host = headers.get(b"host", b"").decode("latin-1")
    if urlsplit(origin).netloc == host:
        return True
    return origin in settings.CSRF_TRUSTED_ORIGINS


def _environment_from_login(headers: dict[bytes, bytes]) -> Environment:
    """The dashboard's call console: the login session, its chosen environment, an allowed origin."""
    from importlib import import_module

    from django.contrib.auth import SESSION_KEY, get_user_model

    from accounts.selectors import DASHBOARD_ENVIRONMENT_KEY, membership_environment

    cookies = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
    morsel = cookies.get(settings.SESSION_COOKIE_NAME)
    if morsel is None:
        raise Unauthenticated(
            "Send your API key as `Authorization: Bearer <key>`.",
            code="missing_api_key",
        )
    if not _same_origin(headers):
        raise Forbidden(
            "This origin may not open media sockets with a login session.",
            code="origin_not_allowed",
        )
    store = import_module(settings.SESSION_ENGINE).SessionStore(morsel.value)
    user = (
        get_user_model()
        .objects.filter(pk=store.get(SESSION_KEY), is_active=True)
        .first()
    )
    found = membership_environment(user, store.get(DASHBOARD_ENVIRONMENT_KEY))
    if found is None:
        raise Unauthenticated("Log in to the dashboard first.", code="login_required")
    environment, membership = found
    if not membership.can_manage:
        raise Forbidden(
            "Only owners and admins can talk in calls.", code="role_forbidden"
        )
    return environment


def _authorize(
    headers: dict[bytes, bytes], session_id: str, call_id: str
) -> dict[str, Any]:
    from calls import selectors
    from config.api.auth import authenticate_key, bearer_token

    authorization = headers.get(b"authorization", b"").decode("latin-1") or None
    if authorization is None and b"cookie" in headers:
        environment = _environment_from_login(headers)
    else:
        environment = authenticate_key(bearer_token(authorization)).environment
    session = selectors.session_get(environment, session_id)
    call = selectors.call_get(environment, session, call_id)
    return {
        "call_id": str(call.public_id),
        "host": call.host,
        "state": call.state,
        "snapshot": call_snapshot(call),
        "hosted_media_url": hosted_media_url(call),
    }


authorize = database_sync_to_async(_authorize, thread_sensitive=False)
live_channel = database_sync_to_async(hosts.live_channel_of, thread_sensitive=False)

# The sockets open in this process. When it stops, its own calls end first (their
# sockets get `ended` and close 1000); those still open then are bridged to calls
# hosted elsewhere, which go on: they close 1012 so their clients reconnect.
_open: set[MediaConsumer] = set()


def _close_open_sockets() -> None:
    for consumer in list(_open):
        consumer.close(CLOSE_SERVICE_RESTART)


shutdown.on_stop(_close_open_sockets)


class MediaConsumer(AsyncConsumer):
    """One client's media socket for one call."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self._send = send
        self._queue: deque[dict[str, Any]] = deque()
        self._queued_audio = 0
        self._draining: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped_frames = 0
        self.link: MediaLink | None = None
        self.runtime: CallRuntime | None = None
        self.bridge: SocketBridge | None = None
        self._engine: Engine | None = None
        self._send_binary_now: Callable[[bytes], bool] | None = None

        first = await receive()
        if first["type"] != "websocket.connect":
            return
        kwargs = scope["url_route"]["kwargs"]
        try:
            call = await authorize(
                dict(scope["headers"]), kwargs["session_id"], kwargs["call_id"]
            )
        except ApplicationError as refusal:
            # Closing before accept makes the server answer the upgrade with HTTP 403.
            await send({"type": "websocket.close", "code": 4000 + refusal.status})
            return
        await send({"type": "websocket.accept"})
        _open.add(self)
        # A server with Switchboard's media protocol hands binary frames to the link as
        # they are parsed, without waking this task for each (config/media_server.py).
        extensions = scope.get("extensions") or {}
        direct = extensions.get(BINARY_RECEIVER)
        sender = extensions.get(BINARY_SENDER)
        self._send_binary_now = sender["send"] if sender is not None else None
        try:
            engine = await ensure_engine()
            media = await self._attach(engine, call)
            if media is not None:
                if direct is not None:
                    direct["set"](media.push_audio)
                await self._receive_loop(receive, media)
        finally:
            _open.discard(self)
            if direct is not None:
                direct["set"](None)
            self._detach()
            if self.bridge is not None:
                await self.bridge.shut()
                if self._engine is not None:
                    self._engine.bridged_sockets -= 1
            self._closed = True
            if self._draining is not None:
                await asyncio.gather(self._draining, return_exceptions=True)

    # ------------------------------------------------------------ attaching
    async def _attach(self, engine: Engine, call: dict[str, Any]) -> MediaInput | None:
        runtime = engine.runtimes.get(call["call_id"])
        if runtime is not None and runtime.state != CallState.ENDED:
            link = MediaLink(
                send_audio=self.send_audio,
                send_json=self.send_json,
                close=self.close,
                capacity_ms=settings.MEDIA_BUFFER_CAPACITY_MS,
                pause_ms=settings.MEDIA_BUFFER_PAUSE_MS,
                resume_ms=settings.MEDIA_BUFFER_RESUME_MS,
            )
            self.send_json(ready_frame(runtime.snapshot))
            attach(runtime, link)
            self.link, self.runtime = link, runtime
            return link
        snapshot = runtime.snapshot if runtime is not None else call["snapshot"]
        if snapshot["state"] == CallState.ENDED:
            self.send_json({"type": "ended", "call": snapshot})
            self.close(1000)
            return None
        channel = await live_channel(call["host"])
        layer = get_channel_layer()
        if channel and layer is not None and channel != engine.channel_name:
            if engine.full:
                # Bridging costs this process a call's worth of media work; a full one
                # sends the client to try again (the proxy may pick another process).
                self.send_json(
                    {
                        "type": "error",
                        "code": "media_capacity",
                        "message": "This media process is full; reconnect shortly.",
                    }
                )
                self.close(1013)
                return None
            bridge = SocketBridge(
                layer,
                channel,
                send_audio=self.send_audio,
                send_json=pointing_to_host(self.send_json, call),
                close=self.close,
            )
            await bridge.open(call["call_id"])
            self.bridge = bridge
            engine.bridged_sockets += 1
            self._engine = engine
            return bridge
        self.send_json(
            {
                "type": "error",
                "code": "call_unavailable",
                "message": "The process hosting this call is not answering; reconnect shortly.",
            }
        )
        self.close(1011)
        return None

    def _detach(self) -> None:
        if self.runtime is not None and self.link is not None:
            self.runtime.detach_client(self.link)
        self.runtime = None

    async def _receive_loop(self, receive: Any, media: MediaInput) -> None:
        push_audio = media.push_audio
        while True:
            message = await receive()
            data = message.get("bytes")
            if data is not None:
                push_audio(data)
            elif message["type"] == "websocket.receive":
                media.handle_text(message.get("text") or "")
            elif message["type"] == "websocket.disconnect":
                return

    # ------------------------------------------------------------ sending
    def send_audio(self, data: bytes) -> None:
        if self._draining is None and not self._queue and not self._closed:
            # Every tick, for every call.
            send_now = self._send_binary_now
            if send_now is None or not send_now(data):
                self._send_now({"type": "websocket.send", "bytes": data})
        elif self._queued_audio >= MAX_QUEUED_AUDIO_FRAMES:
            self.dropped_frames += 1
        else:
            self._enqueue({"type": "websocket.send", "bytes": data})

    def send_json(self, payload: dict[str, Any]) -> None:
        self._enqueue({"type": "websocket.send", "text": json.dumps(payload)})

    def close(self, code: int) -> None:
        self._enqueue({"type": "websocket.close", "code": code})
        self._detach()

    def _enqueue(self, message: dict[str, Any]) -> None:
        """Send in order; right away when nothing waits, without a task switch."""
        if self._closed:
            return
        if message["type"] == "websocket.close":
            self._closed = True
        if self._draining is not None or self._queue:
            if "bytes" in message:
                self._queued_audio += 1
            self._queue.append(message)
            return
        self._send_now(message)

    def _send_now(self, message: dict[str, Any]) -> None:
        # The server's send() normally completes without suspending; step it here and
        # hand it to a task only if the socket pushes back.
        pending = self._send(message)
        try:
            waiting_on = pending.send(None)
        except StopIteration:
            return
        except Exception:  # the client went away
            self._closed = True
            logger.debug("Media socket send failed", exc_info=True)
            return
        self._draining = asyncio.get_running_loop().create_task(
            self._drain(pending, waiting_on)
        )

    async def _drain(self, pending: Any, waiting_on: Any) -> None:
        """Finish a send that suspended, then everything queued behind it."""
        try:
            while True:
                # The suspended send sees its future's outcome itself when resumed.
                with contextlib.suppress(Exception):
                    await (waiting_on if waiting_on is not None else asyncio.sleep(0))
                try:
                    waiting_on = pending.send(None)
                except StopIteration:
                    break
            while self._queue:
                message = self._queue.popleft()
                if "bytes" in message:
                    self._queued_audio -= 1
                await self._send(message)
        except Exception:  # the client went away mid-send
            self._closed = True
            logger.debug("Media socket send failed", exc_info=True)
        finally:
            self._draining = None
