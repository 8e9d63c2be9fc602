from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Environment
from config.errors import Conflict, InvalidRequest
from config.times import iso_ms
from events import bus, signing, urlguard
from events import delivery as webhook_delivery
from events.models import (
    DeliveryStatus,
    DisabledReason,
    Event,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

WILDCARD = "*"


def envelope_of(event: Event) -> dict[str, Any]:
    """Render the public envelope ``{id, type, createdAt, sessionId, data}``."""
    return {
        "id": str(event.public_id),
        "type": event.type,
        "createdAt": iso_ms(event.created_at),
        "sessionId": str(event.session_public_id) if event.session_public_id else None,
        "data": event.data,
    }


def event_emit(
    *,
    environment: Environment,
    type: str,
    data: dict[str, Any],
    session_public_id: uuid.UUID | str | None = None,
) -> Event:
    """Write an event and its webhook deliveries (the outbox) in the caller's
    transaction; publish it and queue the deliveries once that commits."""
    with transaction.atomic():
        event = Event.objects.create(
            environment=environment,
            type=type,
            data=data,
            session_public_id=session_public_id,
        )
        deliveries = webhook_delivery.create_deliveries(event)
    envelope = envelope_of(event)
    env_id = environment.public_id
    transaction.on_commit(lambda: bus.publish(env_id, envelope))
    if deliveries:
        # Robust: a queueing problem is logged (the sweep queues the rows later).
        transaction.on_commit(
            lambda: webhook_delivery.queue_deliveries(deliveries), robust=True
        )
    return event


# ---------------------------------------------------------------- webhook endpoints


@dataclass(frozen=True)
class EndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str


def _vet_url(url: str) -> str:
    try:
        urlguard.vet(
            url,
            allow_http=settings.WEBHOOK_ALLOW_HTTP,
            allow_private=settings.WEBHOOK_ALLOW_PRIVATE,
        )
    except urlguard.UrlRefused as exc:
        raise InvalidRequest(str(exc), code=exc.code, param="url") from None
    return url


def _event_types(events: list[str]) -> list[str]:
    known = set(EventType.values)
    for index, name in enumerate(events):
        if name != WILDCARD and name not in known:
            raise InvalidRequest(
                f"{name!r} is not an event type; use one of {', '.join(sorted(known))}"
                f" or {WILDCARD!r} for all.",
                code="unknown_event_type",
                param=f"events[{index}]",
            )
    if not events:
        raise InvalidRequest(
            "Name at least one event type, or '*' for all.",
            code="no_event_types",
            param="events",
        )
    return [WILDCARD] if WILDCARD in events else list(dict.fromkeys(events))


def webhook_create(
    *, environment: Environment, url: str, events: list[str], description: str = ""
) -> EndpointWithSecret:
    """Register a webhook endpoint; its secret is in the result, and nowhere else again."""
    secret = signing.secret_generate()
    endpoint = WebhookEndpoint.objects.create(
        environment=environment,
        url=_vet_url(url),
        events=_event_types(events),
        description=description,
        secret=secret,
    )
    return EndpointWithSecret(endpoint, secret)


def webhook_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change an endpoint's URL, event types, description or enabled flag."""
    if url is not None:
        endpoint.url = _vet_url(url)
    if events is not None:
        endpoint.events = _event_types(events)
    if description is not None:
        endpoint.description = description
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = enabled
        endpoint.disabled_reason = "" if enabled else DisabledReason.MANUAL
    endpoint.save()
    return endpoint


def webhook_delete(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Delete an endpoint and its delivery log; attempts already queued find nothing."""
    endpoint.delete()
    return endpoint


def webhook_rotate_secret(*, endpoint: WebhookEndpoint) -> EndpointWithSecret:
    """Give an endpoint a new secret; the old one keeps signing too during the overlap."""
    secret = signing.secret_generate()
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        now = timezone.now()
        locked.previous_secret = locked.secret
        locked.secret_rotated_at = now
        locked.previous_secret_expires_at = now + timedelta(
            seconds=settings.WEBHOOK_SECRET_OVERLAP_S
        )
        locked.secret = secret
        locked.save()
    return EndpointWithSecret(locked, secret)


def delivery_retry(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now, whatever became of it (a new attempt, same webhook-id)."""
    with transaction.atomic():
        locked = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .get(pk=delivery.pk)
        )
        if not locked.endpoint.enabled:
            raise Conflict(
                "The endpoint is disabled; enable it (PATCH enabled: true) first.",
                code="webhook_disabled",
            )
        if WebhookAttempt.objects.filter(delivery=locked, finished_at=None).exists():
            raise Conflict(
                "An attempt of this delivery is in progress.",
                code="delivery_in_progress",
                headers={"Retry-After": "5"},
            )
        locked.status = DeliveryStatus.PENDING
        locked.next_attempt_at = timezone.now()
        locked.completed_at = None
        locked.save()
        delivery_id, number = str(locked.public_id), locked.attempt_count + 1
        transaction.on_commit(
            lambda: webhook_delivery.enqueue(delivery_id, number, manual=True)
        )
    return locked
