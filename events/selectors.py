"""Reads of events, webhook endpoints and deliveries, always scoped to one environment."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from accounts.models import Environment
from config.tenancy import parse_public_id, scoped_get
from events.models import Event, WebhookDelivery, WebhookEndpoint


def event_list(
    environment: Environment,
    *,
    session_public_id: str | None = None,
    types: Sequence[str] | None = None,
) -> QuerySet[Event]:
    events = Event.objects.filter(environment=environment)
    if session_public_id is not None:
        events = events.filter(session_public_id=session_public_id)
    if types:
        events = events.filter(type__in=types)
    return events


def event_position(environment: Environment, event_id: object) -> int | None:
    """The log position (primary key) of an environment's event, None if it has none."""
    parsed = parse_public_id(event_id)
    if parsed is None:
        return None
    return (
        Event.objects.filter(environment=environment, public_id=parsed)
        .values_list("pk", flat=True)
        .first()
    )


Cursor = tuple[int, int]  # an event's place in the log: (txid, id)


def event_cursor(environment: Environment, event_id: object) -> Cursor | None:
    """The log position ``(txid, id)`` of an environment's event, None if it has none."""
    parsed = parse_public_id(event_id)
    if parsed is None:
        return None
    return (
        Event.objects.filter(environment=environment, public_id=parsed)
        .values_list("txid", "pk")
        .first()
    )


def settled(events: QuerySet[Event]) -> QuerySet[Event]:
    """Only events no transaction still running can come before (PostgreSQL: written by
    a transaction older than the oldest one running; SQLite's single writer commits in
    the order it writes, so there every committed event is settled)."""
    if connection.vendor != "postgresql":
        return events
    # The reader's own transaction's events too: it sees them, and nothing it has not
    # written can come before them for it.
    return events.filter(
        Q(txid__lt=RawSQL("txid_snapshot_xmin(txid_current_snapshot())", []))
        | Q(txid=RawSQL("txid_current_if_assigned()", []))
    )


def events_after(
    environment_id: int,
    cursor: Cursor | None,
    *,
    session_public_id: str | None = None,
    types: Sequence[str] | None = None,
    limit: int = 500,
) -> list[Event]:
    """The settled events after ``cursor`` in log order, at most ``limit`` of them.

    Read page after page, this never skips an event that commits later than others
    written after it, and never repeats one, however many processes write.
    """
    events = Event.objects.filter(environment_id=environment_id)
    if session_public_id is not None:
        events = events.filter(session_public_id=session_public_id)
    if types:
        events = events.filter(type__in=types)
    if cursor is not None:
        txid, pk = cursor
        events = events.filter(Q(txid__gt=txid) | Q(txid=txid, pk__gt=pk))
    return list(settled(events).order_by("txid", "pk")[:limit])


def event_tail(environment_id: int, session_public_id: str | None = None) -> Cursor:
    """The position after which events written from now on come (the settled log's end)."""
    events = Event.objects.filter(environment_id=environment_id)
    if session_public_id is not None:
        events = events.filter(session_public_id=session_public_id)
    last = settled(events).order_by("-txid", "-pk").values_list("txid", "pk").first()
    return last if last is not None else (-1, 0)


def call_timeline(environment: Environment, call_public_id: str) -> QuerySet[Event]:
    """Events of one call, oldest first."""
    return Event.objects.filter(
        environment=environment, data__callId=str(call_public_id)
    ).order_by("id")


def webhook_list(environment: Environment) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(environment=environment)


def webhook_get(environment: Environment, webhook_id: object) -> WebhookEndpoint:
    return scoped_get(
        WebhookEndpoint.objects.all(), environment, webhook_id, what="webhook"
    )


def delivery_list(
    environment: Environment, endpoint: WebhookEndpoint, *, status: str | None = None
) -> QuerySet[WebhookDelivery]:
    deliveries = (
        WebhookDelivery.objects.filter(environment=environment, endpoint=endpoint)
        .select_related("endpoint", "event")
        .prefetch_related("attempts")
    )
    if status:
        deliveries = deliveries.filter(status=status)
    return deliveries


def delivery_get(
    environment: Environment, endpoint: WebhookEndpoint, delivery_id: object
) -> WebhookDelivery:
    return scoped_get(
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("endpoint", "event")
        .prefetch_related("attempts"),
        environment,
        delivery_id,
        what="delivery",
    )
