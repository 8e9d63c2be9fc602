"""Server-Sent Events: an environment's (or one session's) events, replayed, then live.

``event_stream`` is the whole protocol as an async generator of bytes, independent of how
the caller authenticated, so the API (bearer key) and the dashboard (login session) serve
the same stream. It runs on the server's event loop — the home loop, where the channel
layer lives — and costs an idle stream one channel-layer subscription and a timer — no thread (see ``release_request_thread``).

No gaps, no duplicates: the stream subscribes to the live group *before* it replays the
log after ``Last-Event-ID``, so an event committed meanwhile is either in the replay or
arrives live; a live copy of an event the replay already sent is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from datetime import timedelta
from typing import Any

from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connections
from django.http import StreamingHttpResponse
from django.utils import timezone

from accounts.models import Environment
from config.errors import InvalidRequest
from events import bus, selectors
from events.models import Event
from events.services import envelope_of

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/event-stream"
REPLAY_PAGE = 500
PING = b": ping\n\n"
# Sent first: EventSource reconnects this many ms after the stream ends.
RETRY = b"retry: 3000\n\n"
# A live copy of a replayed event can only come from a publish still on its way when the
# stream subscribed; replayed ids younger than this are remembered to drop such copies.
DEDUP_WINDOW = timedelta(minutes=5)
# channels_redis forgets a group member after group_expiry (a day): re-join well before.
GROUP_REFRESH_S = 3600.0


def wants_event_stream(accept: str) -> bool:
    """True if an Accept header asks for text/event-stream."""
    return any(
        part.split(";", 1)[0].strip().lower() == CONTENT_TYPE
        for part in accept.split(",")
    )


def frame(envelope: dict[str, Any]) -> bytes:
    """One SSE message: ``id``, ``event`` and the envelope as one line of JSON."""
    data = json.dumps(envelope, separators=(",", ":"))
    return f"id: {envelope['id']}\nevent: {envelope['type']}\ndata: {data}\n\n".encode()


# Not thread-sensitive: a shared pool thread, not a thread per open stream.
position = database_sync_to_async(selectors.event_position, thread_sensitive=False)


async def check_last_event_id(environment: Environment, last_event_id: str) -> None:
    """Raise InvalidRequest unless ``last_event_id`` is an event of this environment."""
    if await position(environment, last_event_id) is None:
        raise InvalidRequest(
            "Last-Event-ID is not the id of an event of this environment.",
            code="unknown_last_event_id",
            param="lastEventId",
        )


def _replay_page(
    environment_id: int,
    session_public_id: str | None,
    after: int,
    recent_since: Any,
) -> list[tuple[int, dict[str, Any], bool]]:
    events = Event.objects.filter(environment_id=environment_id, pk__gt=after)
    if session_public_id is not None:
        events = events.filter(session_public_id=session_public_id)
    return [
        (event.pk, envelope_of(event), event.created_at >= recent_since)
        for event in events.order_by("pk")[:REPLAY_PAGE]
    ]


replay_page = database_sync_to_async(_replay_page, thread_sensitive=False)


async def _pump(layer: Any, channel: str, live: asyncio.Queue[dict[str, Any]]) -> None:
    """Move published events from the channel layer into the stream's queue.

    Returns when the client reads too slowly or the layer fails; the stream then ends
    and the client resumes from the log with Last-Event-ID, missing nothing.
    """
    try:
        while True:
            message = await layer.receive(channel)
            if message.get("type") != "event.published":
                continue
            if live.qsize() >= settings.SSE_MAX_BUFFERED:
                logger.info("SSE client %s fell behind; ending its stream", channel)
                return
            live.put_nowait(message["envelope"])
    except Exception:
        logger.exception("SSE stream %s lost the channel layer", channel)


async def event_stream(
    environment: Environment,
    session_public_id: uuid.UUID | str | None,
    last_event_id: str | None,
) -> AsyncGenerator[bytes, None]:
    """Yield SSE bytes: the events after ``last_event_id`` from the log, then live ones."""
    layer = get_channel_layer()
    assert layer is not None, "CHANNEL_LAYERS has no default layer"
    session_id = str(session_public_id) if session_public_id else None
    group = (
        bus.session_group(session_id)
        if session_id
        else bus.environment_group(environment.public_id)
    )
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    joined = time.monotonic()
    live: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    pump = asyncio.create_task(_pump(layer, channel, live))
    try:
        yield RETRY
        replayed: set[str] = set()
        after = await position(environment, last_event_id) if last_event_id else None
        if after is not None:
            recent_since = timezone.now() - DEDUP_WINDOW
            while True:
                page = await replay_page(
                    environment.pk, session_id, after, recent_since
                )
                for pk, envelope, recent in page:
                    if recent:
                        replayed.add(envelope["id"])
                    after = pk
                    yield frame(envelope)
                if len(page) < REPLAY_PAGE:
                    break
        heartbeat = settings.SSE_HEARTBEAT_S
        while not pump.done():
            if time.monotonic() - joined > GROUP_REFRESH_S:
                await layer.group_add(group, channel)
                joined = time.monotonic()
            try:
                envelope = await asyncio.wait_for(live.get(), heartbeat)
            except TimeoutError:
                yield PING
                continue
            if envelope["id"] in replayed:
                replayed.discard(envelope["id"])
                continue
            yield frame(envelope)
    finally:
        pump.cancel()
        with contextlib.suppress(Exception):
            await layer.group_discard(group, channel)


def release_request_thread() -> None:
    """Let go of the thread Django keeps for this request's sync code.

    Under ASGI, Django runs a request's synchronous parts (most middleware) on a thread
    kept for that request until the response is finished: every open stream would hold
    one idle thread. Once streaming has begun the middleware is done, so the stream
    closes that thread's database connections there and lets it end; anything sync that
    still runs for the request gets a fresh thread from asgiref.
    """
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None or getattr(context, "_executor", None) is not None:
        return  # not a per-request context of Django's
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is not None:
        executor.submit(connections.close_all)
        executor.shutdown(wait=False)


async def _served(stream: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    release_request_thread()
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await stream.aclose()


def stream_response(stream: AsyncGenerator[bytes, None]) -> StreamingHttpResponse:
    """Wrap an event stream in a response no proxy or cache should buffer."""
    response = StreamingHttpResponse(_served(stream), content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"
    return response
