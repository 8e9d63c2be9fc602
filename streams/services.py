"""Writes for dial-out streams: creation under the per-call limits, state changes, events.

A stream's row is the truth about its state. Runtime workers change it only through
``stream_transition``, a conditional update, so a stream stopped through the API or
ended with its call cannot be revived by a worker that has not heard yet.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from calls.models import Call, CallState
from config.api.serializers import iso_ms
from config.errors import Conflict, ServiceUnavailable
from events.models import Event, EventType
from events.services import envelope_of, event_emit
from streams.models import (
    LIVE_STATES,
    Stream,
    StreamDialect,
    StreamFormat,
    StreamState,
    StreamType,
)

logger = logging.getLogger(__name__)

MAX_TWOWAY = 1
MAX_ONEWAY = 5

CALL_ENDED = "call_ended"
REQUESTED = "requested"
HOST_LOST = "host_lost"

# The states a transition may leave, per target state.
_ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    StreamState.CONNECTING: LIVE_STATES,
    StreamState.STREAMING: (StreamState.CONNECTING,),
    StreamState.STOPPED: LIVE_STATES,
    StreamState.FAILED: LIVE_STATES,
}
_EVENT_OF: dict[str, str] = {
    StreamState.STREAMING: EventType.CALL_STREAM_STARTED,
    StreamState.STOPPED: EventType.CALL_STREAM_STOPPED,
    StreamState.FAILED: EventType.CALL_STREAM_FAILED,
}
COUNTER_FIELDS = (
    "frames_sent",
    "frames_received",
    "frames_dropped",
    "protocol_errors",
    "reconnects",
    "last_error",
)


def default_format(dialect: str) -> str:
    """μ-law 8 kHz for Twilio clients (all Twilio speaks), 16-bit 16 kHz PCM otherwise."""
    if dialect == StreamDialect.TWILIO:
        return StreamFormat.MULAW_8000
    return StreamFormat.PCM16_16000


def check_limits(existing: Iterable[str], new: Iterable[str]) -> None:
    """Refuse more than one twoway and five oneway live streams on a call."""
    types = list(existing) + list(new)
    twoway = sum(1 for kind in types if kind == StreamType.TWOWAY)
    oneway = len(types) - twoway
    if twoway > MAX_TWOWAY or oneway > MAX_ONEWAY:
        raise Conflict(
            f"A call has at most {MAX_TWOWAY} twoway and {MAX_ONEWAY} oneway live "
            f"streams; this would make {twoway} twoway and {oneway} oneway.",
            code="stream_limit",
        )


def live_stream_types(call: Call) -> list[str]:
    return list(
        Stream.objects.filter(call=call, state__in=LIVE_STATES).values_list(
            "type", flat=True
        )
    )


def stream_event_data(stream: Stream) -> dict[str, Any]:
    data: dict[str, Any] = {
        "callId": str(stream.call.public_id),
        "streamId": str(stream.public_id),
        "state": stream.state,
        "reason": stream.reason or None,
        "type": stream.type,
        "channel": stream.channel,
        "format": stream.format,
        "dialect": stream.dialect,
        "url": stream.url,
        "framesSent": stream.frames_sent,
        "framesReceived": stream.frames_received,
        "framesDropped": stream.frames_dropped,
        "error": stream.last_error or None,
        "startedAt": iso_ms(stream.started_at),
        "stoppedAt": iso_ms(stream.stopped_at),
    }
    if stream.state == StreamState.STREAMING:
        data["reconnect"] = stream.reason == "reconnected"
    return data


def _emit(stream: Stream) -> None:
    event = event_emit(
        environment=stream.environment,
        type=_EVENT_OF[stream.state],
        data=stream_event_data(stream),
        session_public_id=stream.call.session.public_id,
    )
    if stream.status_callback:
        from streams.tasks import status_callback_enqueue

        event_pk, stream_pk = event.pk, stream.pk
        transaction.on_commit(lambda: status_callback_enqueue(event_pk, stream_pk))


@transaction.atomic
def streams_create(
    *, call: Call, options: list[dict[str, Any]], allow_ended: bool = False
) -> list[Stream]:
    """Create streams of a call (pending), within the per-call limits.

    ``allow_ended``: the call was just placed and may already have failed; its streams
    are then recorded as stopped rather than refused.
    """
    locked = Call.objects.select_for_update().get(pk=call.pk)
    ended = locked.state == CallState.ENDED
    if ended and not allow_ended:
        raise Conflict("The call has ended.", code="call_not_active")
    check_limits(live_stream_types(locked), (item["type"] for item in options))
    now = timezone.now()
    created = []
    for item in options:
        stream = Stream.objects.create(
            environment=call.environment,
            call=call,
            url=item["url"],
            type=item["type"],
            channel=item["channel"],
            format=item.get("format") or default_format(item["dialect"]),
            dialect=item["dialect"],
            on_disconnect=item["on_disconnect"],
            headers=item.get("headers") or {},
            custom_parameters=item.get("custom_parameters") or {},
            status_callback=item.get("status_callback") or "",
            state=StreamState.STOPPED if ended else StreamState.PENDING,
            reason=CALL_ENDED if ended else "",
            stopped_at=now if ended else None,
        )
        if ended:
            _emit(stream)
        created.append(stream)
    return created


def stream_transition(
    *,
    stream_id: str,
    to: str,
    reason: str,
    counters: dict[str, Any] | None = None,
) -> bool:
    """Move a stream to a state if it may leave its current one; emit its event."""
    now = timezone.now()
    changes: dict[str, Any] = {"state": to, "reason": reason, "updated_at": now}
    if counters:
        changes.update({name: counters[name] for name in COUNTER_FIELDS})
    if to in (StreamState.STOPPED, StreamState.FAILED):
        changes["stopped_at"] = now
    with transaction.atomic():
        rows = Stream.objects.filter(public_id=stream_id, state__in=_ALLOWED_FROM[to])
        if not rows.update(**changes):
            return False
        if to == StreamState.STREAMING:
            Stream.objects.filter(public_id=stream_id, started_at__isnull=True).update(
                started_at=now
            )
        if to in _EVENT_OF:
            stream = Stream.objects.select_related(
                "environment", "call", "call__session"
            ).get(public_id=stream_id)
            _emit(stream)
    return True


def stream_save_counters(*, stream_id: str, counters: dict[str, Any]) -> None:
    """Record a live stream's frame counts and last error (every few seconds)."""
    Stream.objects.filter(public_id=stream_id, state__in=LIVE_STATES).update(
        updated_at=timezone.now(), **{name: counters[name] for name in COUNTER_FIELDS}
    )


def streams_end_remaining(*, call_pk: int, to: str, reason: str) -> int:
    """End every stream of a call that is still live (its call or its host is gone)."""
    ids = list(
        Stream.objects.filter(call_id=call_pk, state__in=LIVE_STATES).values_list(
            "public_id", flat=True
        )
    )
    return sum(
        stream_transition(stream_id=str(stream_id), to=to, reason=reason)
        for stream_id in ids
    )


def streams_reaped(call_pk: int) -> None:
    """The process hosting the call died: its streams died with it."""
    streams_end_remaining(call_pk=call_pk, to=StreamState.FAILED, reason=HOST_LOST)


# ---------------------------------------------------------------- through the runtime


def streams_start(*, call: Call, streams: list[Stream]) -> None:
    """Ask the call's runtime to run new streams (at once if media flows, else on answer)."""
    from calls.runtime import control

    for stream in streams:
        if stream.state != StreamState.PENDING:
            continue
        try:
            control.run_command(call, "stream_start", stream_id=str(stream.public_id))
        except Conflict:
            # The call ended before its runtime heard of the stream.
            stream_transition(
                stream_id=str(stream.public_id),
                to=StreamState.STOPPED,
                reason=CALL_ENDED,
            )
        except ServiceUnavailable:
            # Its host is not answering: the stream stays pending, and the host's
            # on_active scan or the reaper settles it.
            logger.warning(
                "Stream %s: its call's host did not answer", stream.public_id
            )
        stream.refresh_from_db()


def stream_create_and_start(*, call: Call, options: dict[str, Any]) -> Stream:
    """Create one stream on a call and start it where the call's runtime lives."""
    (stream,) = streams_add(call=call, options=[options])
    return stream


def streams_precheck(*, call: Call | None, options: list[dict[str, Any]]) -> None:
    """Refuse a `streams` list over the limits before placing or accepting its call."""
    check_limits(
        live_stream_types(call) if call is not None else [],
        (item["type"] for item in options),
    )


def streams_add(
    *, call: Call, options: list[dict[str, Any]], allow_ended: bool = False
) -> list[Stream]:
    """Create streams on a call and start them (``streams`` on call start and accept)."""
    if not options:
        return []
    streams = streams_create(call=call, options=options, allow_ended=allow_ended)
    streams_start(call=call, streams=streams)
    return streams


def stream_stop(*, stream: Stream) -> Stream:
    """Stop a stream: its receiver gets `stop` and the socket closes (idempotent)."""
    from calls.runtime import control

    if stream.is_live:
        # Conflict: the call has ended, and its streams are ending with it.
        with contextlib.suppress(Conflict):
            control.run_command(
                stream.call, "stream_stop", stream_id=str(stream.public_id)
            )
        stream_transition(
            stream_id=str(stream.public_id), to=StreamState.STOPPED, reason=REQUESTED
        )
        stream.refresh_from_db()
    return stream


# ---------------------------------------------------------------- status callbacks


def status_callback_request(
    *, event_id: int, stream_id: int
) -> tuple[str, str, dict[str, Any], str] | None:
    """What to POST for one stream event: (url, message id, envelope, signing secret)."""
    stream = Stream.objects.select_related("environment").filter(pk=stream_id).first()
    event = Event.objects.filter(pk=event_id).first()
    if stream is None or event is None or not stream.status_callback:
        return None
    return (
        stream.status_callback,
        str(event.public_id),
        envelope_of(event),
        stream.environment.signing_secret,
    )


def callback_timeout() -> float:
    return float(settings.STREAM_STATUS_CALLBACK_TIMEOUT_S)


class StreamsForCalls:
    """Streams given with a call as it is placed or accepted (``calls.runtime.hooks``)."""

    def precheck(self, call: Call | None, options: list[dict[str, Any]]) -> None:
        streams_precheck(call=call, options=options)

    def add(
        self, call: Call, options: list[dict[str, Any]], *, allow_ended: bool = False
    ) -> list[Stream]:
        return streams_add(call=call, options=options, allow_ended=allow_ended)
