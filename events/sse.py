"""Server-Sent Events: an environment's (or one session's) events, replayed, then live.

``event_stream`` is the whole protocol as an async generator of bytes, independent of how
the caller authenticated, so the API (bearer key) and the dashboard (login session) serve
the same stream. It runs on the server's event loop — the home loop, where the channel
layer lives — and costs an idle stream one channel-layer subscription and a timer — no thread (see ``release_request_thread``).

No gaps, no duplicates, whatever the number of writers: the log is the only source. The
stream subscribes to the live group first, then reads the log after ``Last-Event-ID``
(or from its end) in the log's commit-safe order (``events.selectors.events_after``),
and each event published afterwards only wakes it to read the log again. An event whose
transaction committed while an older one still runs waits (the stream looks again every
``SETTLE_POLL_S``) until nothing can come before it: ids are taken at write time, so
delivering by id as events commit would let a resumed stream skip the slower one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connections
from django.http import StreamingHttpResponse

from accounts.models import Environment
from config.errors import InvalidRequest
from events import bus, selectors
from events.services import envelope_of

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/event-stream"
REPLAY_PAGE = 500
PING = b": ping\n\n"
# Sent first: EventSource reconnects this many ms after the stream ends.
RETRY = b"retry: 3000\n\n"
# While a published event has not been read from the log yet (an older transaction is
# still running), the stream looks again this often; it gives up waiting after
# SETTLE_GIVE_UP_S (the event's transaction is long gone: it will come with the next).
SETTLE_POLL_S = 0.05
SETTLE_GIVE_UP_S = 30.0
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
cursor_of = database_sync_to_async(selectors.event_cursor, thread_sensitive=False)
tail_of = database_sync_to_async(selectors.event_tail, thread_sensitive=False)


async def check_last_event_id(environment: Environment, last_event_id: str) -> None:
    """Raise InvalidRequest unless ``last_event_id`` is an event of this environment."""
    if await position(environment, last_event_id) is None:
        raise InvalidRequest(
            "Last-Event-ID is not the id of an event of this environment.",
            code="unknown_last_event_id",
            param="lastEventId",
        )


def _page(
    environment_id: int, session_public_id: str | None, after: selectors.Cursor | None
) -> list[tuple[selectors.Cursor, dict[str, Any]]]:
    return [
        ((event.txid, event.pk), envelope_of(event))
        for event in selectors.events_after(
            environment_id,
            after,
            session_public_id=session_public_id,
            limit=REPLAY_PAGE,
        )
    ]


read_page = database_sync_to_async(_page, thread_sensitive=False)


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
        # The starting place is read before the client sees the stream open: an event
        # written once it has seen the response is after it.
        if last_event_id:
            after = await cursor_of(environment, last_event_id)
        else:
            after = await tail_of(environment.pk, session_id)
        yield RETRY
        # Published events not read from the log yet: id → when they were announced.
        waiting: dict[str, float] = {}
        heartbeat = settings.SSE_HEARTBEAT_S
        quiet_since = time.monotonic()
        while not pump.done():
            page = await read_page(environment.pk, session_id, after)
            for position_, envelope in page:
                after = position_
                waiting.pop(envelope["id"], None)
                yield frame(envelope)
            if page:
                quiet_since = time.monotonic()
            if len(page) == REPLAY_PAGE:
                continue
            now = time.monotonic()
            for event_id, since in list(waiting.items()):
                if now - since > SETTLE_GIVE_UP_S:
                    del waiting[event_id]
            if now - joined > GROUP_REFRESH_S:
                await layer.group_add(group, channel)
                joined = now
            timeout = SETTLE_POLL_S if waiting else heartbeat
            try:
                envelope = await asyncio.wait_for(live.get(), timeout)
            except TimeoutError:
                if time.monotonic() - quiet_since >= heartbeat:
                    yield PING
                    quiet_since = time.monotonic()
                continue
            waiting[envelope["id"]] = time.monotonic()
            while not live.empty():  # read the log once for everything announced
                waiting[live.get_nowait()["id"]] = time.monotonic()
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
