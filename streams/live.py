"""Streams inside the call runtime: engine commands, runtime hooks, the workers' database.

Everything here runs on the home loop of the process hosting the call. The database is
reached only from worker threads (``database_sync_to_async``, not thread-sensitive),
on state changes and every few seconds for counters; never per frame.

- ``stream_start`` (command): the runtime learns of a new stream; it starts at once if
  media flows, otherwise when the call is answered.
- ``stream_stop`` (command): the stream sends ``stop``, closes and is recorded stopped.
- ``on_active`` (hook): media begins; start every stream the runtime knows, then any
  pending stream of the call it has not heard of (created while a command was lost).
- ``on_end`` (hook): the call ended; every stream stops with reason ``call_ended``.
- ``on_reaped`` (hook): the host died; its calls' live streams are marked failed.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings

from calls.models import CallState, EndReason
from streams import services
from streams.formats import FORMATS
from streams.models import Stream, StreamState
from streams.protocol import StreamIdentity
from streams.worker import (
    CALL_ENDED,
    REQUESTED,
    StreamOptions,
    StreamWorker,
    WorkerConfig,
)

if TYPE_CHECKING:
    from calls.runtime.runtime import CallRuntime

STOP_WAIT_S = 3.0

_workers: weakref.WeakKeyDictionary[CallRuntime, dict[str, StreamWorker]] = (
    weakref.WeakKeyDictionary()
)


def register() -> None:
    from calls.runtime import hooks
    from calls.runtime.engine import register_command

    register_command("stream_start", stream_start)
    register_command("stream_stop", stream_stop)
    hooks.register(
        on_active=on_active, on_end=on_end, on_reaped=services.streams_reaped
    )


def workers_of(runtime: CallRuntime) -> dict[str, StreamWorker]:
    """The streams a runtime is running (or will run once answered)."""
    return _workers.setdefault(runtime, {})


def worker_config() -> WorkerConfig:
    return WorkerConfig(
        connect_timeout_s=settings.STREAM_CONNECT_TIMEOUT_S,
        connect_attempts=settings.STREAM_CONNECT_ATTEMPTS,
        backoff_s=settings.STREAM_RETRY_BACKOFF_S,
        send_queue_ms=settings.STREAM_SEND_QUEUE_MS,
        playout_capacity_ms=settings.STREAM_PLAYOUT_CAPACITY_MS,
        stats_interval_s=settings.STREAM_STATS_INTERVAL_S,
        resample_quality=settings.STREAM_RESAMPLE_QUALITY,
        allow_private=settings.STREAM_ALLOW_PRIVATE,
        max_message_bytes=settings.STREAM_MAX_MESSAGE_BYTES,
    )


# ---------------------------------------------------------------- the database side


@dataclass(frozen=True)
class StreamSpec:
    identity: StreamIdentity
    options: StreamOptions


def _spec(stream: Stream) -> StreamSpec:
    return StreamSpec(
        identity=StreamIdentity(
            call_id=str(stream.call.public_id),
            stream_id=str(stream.public_id),
            session_id=str(stream.call.session.public_id),
            environment_id=str(stream.environment.public_id),
            type=stream.type,
            channel=stream.channel,
            format=FORMATS[stream.format],
            custom_parameters=dict(stream.custom_parameters),
        ),
        options=StreamOptions(
            url=stream.url,
            headers={str(k): str(v) for k, v in stream.headers.items()},
            on_disconnect=stream.on_disconnect,
            dialect=stream.dialect,
            signing_secret=stream.environment.signing_secret,
        ),
    )


def _pending(call_pk: int, stream_id: str | None = None) -> list[StreamSpec]:
    streams = Stream.objects.select_related(
        "environment", "call", "call__session"
    ).filter(call_id=call_pk, state=StreamState.PENDING)
    if stream_id is not None:
        streams = streams.filter(public_id=stream_id)
    return [_spec(stream) for stream in streams]


pending_specs = database_sync_to_async(_pending, thread_sensitive=False)
_transition = database_sync_to_async(services.stream_transition, thread_sensitive=False)
_save_counters = database_sync_to_async(
    services.stream_save_counters, thread_sensitive=False
)
_end_remaining = database_sync_to_async(
    services.streams_end_remaining, thread_sensitive=False
)


class RuntimeHost:
    """A worker's window on its call's runtime and on the database."""

    def __init__(self, runtime: CallRuntime) -> None:
        self.runtime = runtime

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return self.runtime.engine.spawn(coro)

    def attach(self, worker: StreamWorker) -> None:
        runtime = self.runtime
        if runtime.state == CallState.ENDED:
            return
        runtime.attach_client("stream", worker, subscriber=True, source=worker.twoway)

    def detach(self, worker: StreamWorker) -> None:
        self.runtime.detach_client(worker)
        workers = _workers.get(self.runtime)
        if workers is not None and workers.get(worker.stream_id) is worker:
            del workers[worker.stream_id]

    async def transition(self, worker: StreamWorker, state: str, reason: str) -> bool:
        return await _transition(
            stream_id=worker.stream_id,
            to=state,
            reason=reason,
            counters=worker.counters(),
        )

    async def save_counters(self, worker: StreamWorker) -> None:
        await _save_counters(stream_id=worker.stream_id, counters=worker.counters())

    def hang_up(self, worker: StreamWorker) -> None:
        self.runtime.engine.spawn(self.runtime.end(EndReason.COMPLETED))


def _adopt(runtime: CallRuntime, spec: StreamSpec) -> StreamWorker:
    workers = workers_of(runtime)
    worker = workers.get(spec.identity.stream_id)
    if worker is None:
        worker = StreamWorker(
            spec.identity, spec.options, worker_config(), RuntimeHost(runtime)
        )
        workers[spec.identity.stream_id] = worker
    return worker


# ---------------------------------------------------------------- commands


def _reply(stream_id: str, worker: StreamWorker | None) -> dict[str, Any]:
    return {"streamId": stream_id, "state": worker.state if worker else None}


async def stream_start(runtime: CallRuntime, args: dict[str, Any]) -> dict[str, Any]:
    """Engine command: run a pending stream of this call (now, or once answered)."""
    stream_id = str(args["stream_id"])
    worker = workers_of(runtime).get(stream_id)
    if worker is None:
        specs = await pending_specs(runtime.call_pk, stream_id)
        if not specs or runtime.state == CallState.ENDED:
            return _reply(stream_id, None)
        worker = _adopt(runtime, specs[0])
    if runtime.state == CallState.ACTIVE:
        worker.start()
    return _reply(stream_id, worker)


async def stream_stop(runtime: CallRuntime, args: dict[str, Any]) -> dict[str, Any]:
    """Engine command: stop a stream (sends `stop`, closes) and wait until it has."""
    stream_id = str(args["stream_id"])
    worker = workers_of(runtime).get(stream_id)
    if worker is None:
        return _reply(stream_id, None)
    worker.request_stop(REQUESTED)
    await worker.wait_finished(STOP_WAIT_S)
    return _reply(stream_id, worker)


# ---------------------------------------------------------------- hooks


def on_active(runtime: CallRuntime) -> None:
    """Media begins: start the streams given at call start or on accept."""
    for worker in list(workers_of(runtime).values()):
        worker.start()
    runtime.engine.spawn(_start_unheard(runtime))


async def _start_unheard(runtime: CallRuntime) -> None:
    for spec in await pending_specs(runtime.call_pk):
        if runtime.state != CallState.ACTIVE:
            return
        _adopt(runtime, spec).start()


_settling: set[asyncio.Task[Any]] = set()


def on_end(runtime: CallRuntime) -> None:
    """The call ended: every stream sends `stop` and closes."""
    workers = list(_workers.pop(runtime, {}).values())
    for worker in workers:
        worker.request_stop(CALL_ENDED)
    task = runtime.engine.spawn(_settle(runtime.call_pk, workers))
    _settling.add(task)
    task.add_done_callback(_settling.discard)


async def settled(within_s: float = 10.0) -> None:
    """Wait until the streams of every ended call have stopped and been recorded."""
    if _settling:
        await asyncio.wait(set(_settling), timeout=within_s)


async def _settle(call_pk: int, workers: list[StreamWorker]) -> None:
    await asyncio.gather(*(worker.wait_finished(STOP_WAIT_S) for worker in workers))
    # Streams the runtime never heard of (a command lost in a race with the end).
    await _end_remaining(call_pk=call_pk, to=StreamState.STOPPED, reason=CALL_ENDED)
