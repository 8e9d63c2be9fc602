"""Bounded growth: events, webhook deliveries and their attempts, and idempotency records
are deleted once past their retention, a batch at a time.

An environment keeps its events (and the deliveries and attempts made for them) for its
``event_retention_days`` (30 by default); a POST's idempotency record is replayed for
24 h (``IDEMPOTENCY_TTL_SECONDS``) and then deleted. Beat runs ``events.purge_expired``
every ``EVENT_PURGE_INTERVAL_S`` (the embedded scheduler does when no beat runs); each
run deletes at most ``EVENT_PURGE_BATCH`` rows per statement, so no run holds long locks,
and it logs what it deleted. Two runs at once only share the work.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Environment, IdempotencyRecord
from events.models import Event, WebhookAttempt, WebhookDelivery

logger = logging.getLogger(__name__)


def _purge_events(
    environment_id: int, cutoff: object, batch: int
) -> tuple[int, int, int]:
    events = deliveries = attempts = 0
    while True:
        ids = list(
            Event.objects.filter(environment_id=environment_id, created_at__lt=cutoff)
            .order_by("id")
            .values_list("id", flat=True)[:batch]
        )
        if not ids:
            return events, deliveries, attempts
        with transaction.atomic():
            delivery_ids = list(
                WebhookDelivery.objects.filter(event_id__in=ids).values_list(
                    "id", flat=True
                )
            )
            if delivery_ids:
                attempts += WebhookAttempt.objects.filter(
                    delivery_id__in=delivery_ids
                )._raw_delete(WebhookAttempt.objects.db)
                deliveries += WebhookDelivery.objects.filter(
                    id__in=delivery_ids
                )._raw_delete(WebhookDelivery.objects.db)
            events += Event.objects.filter(id__in=ids)._raw_delete(Event.objects.db)
        if len(ids) < batch:
            return events, deliveries, attempts


def purge_expired(*, batch: int | None = None) -> dict[str, int]:
    """Delete what is past its retention; return the counts by kind."""
    batch = batch or settings.EVENT_PURGE_BATCH
    now = timezone.now()
    counts = {"events": 0, "deliveries": 0, "attempts": 0, "idempotencyRecords": 0}
    for environment_id, days in Environment.objects.values_list(
        "id", "event_retention_days"
    ):
        events, deliveries, attempts = _purge_events(
            environment_id, now - timedelta(days=days), batch
        )
        counts["events"] += events
        counts["deliveries"] += deliveries
        counts["attempts"] += attempts
    expired = now - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    while True:
        ids = list(
            IdempotencyRecord.objects.filter(created_at__lt=expired).values_list(
                "id", flat=True
            )[:batch]
        )
        if not ids:
            break
        counts["idempotencyRecords"] += IdempotencyRecord.objects.filter(
            id__in=ids
        )._raw_delete(IdempotencyRecord.objects.db)
    if any(counts.values()):
        logger.info(
            "Purged past retention: %s",
            ", ".join(f"{count} {kind}" for kind, count in counts.items()),
        )
    return counts
