"""Reads of events, webhook endpoints and deliveries, always scoped to one environment."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import QuerySet

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
