"""Webhook delivery: an outbox written with the event, signed attempts, retries.

Life of a delivery. ``event_emit`` writes an event and, in the same transaction
(``create_deliveries``), a ``WebhookDelivery`` row for every enabled endpoint that wants
it: an event is never committed without its deliveries. Once it commits, attempt 1 of
each is queued (``queue_deliveries``); if the process dies in between, the beat sweep
finds the pending rows past their due time and queues them.
An attempt first takes its row — ``(delivery, number)`` is unique, so an attempt that runs
twice (a redelivered Celery task, the sweep racing a countdown) sends nothing the second
time — then POSTs outside any transaction, then records the outcome and queues the next
attempt when one is due:

- 2xx: succeeded.
- timeout, network error, 5xx, 429, 408: retried after ``retry_delay`` (exponential, ±10 %
  jitter, at least Retry-After) until the next attempt would fall past the retry window
  (3 days after the event); then failed.
- 410 Gone: failed, and the endpoint is disabled (``disabledReason: "gone"``).
- any other status, 3xx included (redirects are not followed): failed at once; the
  receiver answered and repeating the same bytes will not change its mind. Fix the
  receiver, then retry the delivery through the API.
- a URL that now resolves to a non-public address (production rules): failed at once.

Where attempts run. With Celery workers (REDIS_URL set) attempts are tasks; a retry due
within WEBHOOK_COUNTDOWN_MAX_S is queued with a countdown, a later one is left to the beat
sweep, which also re-queues anything lost and closes attempts whose worker died. In the
embedded default (eager Celery) nothing may run inline, so attempts go to the process's
scheduler (``config.schedule``), served by WEBHOOK_LOCAL_WORKERS threads, which also runs
the sweep on beat's interval, so retries pending when the process stopped resume.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from config import schedule
from events import sender
from events.models import (
    DeliveryStatus,
    DisabledReason,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from events.sender import Outcome

logger = logging.getLogger(__name__)

SWEEP_BATCH = 500

# ---------------------------------------------------------------- queueing


def embedded() -> bool:
    """True when Celery runs eagerly (no workers): attempts then run in this process."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


def enqueue(
    delivery_id: str, number: int, delay: float = 0.0, *, manual: bool = False
) -> None:
    """Queue attempt ``number`` of a delivery to run in ``delay`` seconds; never blocks."""
    if embedded():
        schedule.scheduler().call_later(
            delay, _attempt_locally, delivery_id, number, manual
        )
        return
    if delay > settings.WEBHOOK_COUNTDOWN_MAX_S:
        return  # the beat sweep queues it once it is due
    from events.tasks import deliver_webhook

    try:
        deliver_webhook.apply_async(
            (delivery_id, number, manual),
            countdown=delay,
            # No publish retries: the emitting code never waits out a broker outage.
            retry=False,
            **({"queue": settings.WEBHOOK_QUEUE} if settings.WEBHOOK_QUEUE else {}),
        )
    except Exception:
        # The row says when it is due; the sweep queues it once the broker is back.
        logger.exception("Could not queue webhook delivery %s", delivery_id)


def _attempt_locally(delivery_id: str, number: int, manual: bool) -> None:
    close_old_connections()
    try:
        attempt(delivery_id, number, manual=manual)
    finally:
        close_old_connections()


# ---------------------------------------------------------------- fan-out


def fan_out(event: Event) -> list[WebhookDelivery]:
    """Give every enabled endpoint that wants ``event`` a delivery, and queue attempt 1."""
    deliveries = create_deliveries(event)
    queue_deliveries(deliveries)
    return deliveries


def queue_deliveries(deliveries: list[WebhookDelivery]) -> None:
    """Queue attempt 1 of deliveries whose rows are committed."""
    for delivery in deliveries:
        enqueue(str(delivery.public_id), 1)


def create_deliveries(event: Event) -> list[WebhookDelivery]:
    """The outbox rows of ``event``: one per enabled endpoint that wants it (written in
    the caller's transaction; nothing is queued here)."""
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(
            environment_id=event.environment_id, enabled=True
        ).only("id", "events")
        if endpoint.accepts(event.type)
    ]
    if not endpoints:
        return []
    now = timezone.now()
    deliveries = [
        WebhookDelivery(
            environment_id=event.environment_id,
            endpoint=endpoint,
            event=event,
            next_attempt_at=now,
        )
        for endpoint in endpoints
    ]
    # A conflict means this event was fanned out already: its task finds no row of ours.
    WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    return deliveries


# ---------------------------------------------------------------- one attempt


INTERRUPTED = Outcome(
    retryable=True,
    error="The attempt was interrupted before it finished (its worker stopped).",
)


def attempt(
    delivery_id: str, number: int, *, manual: bool = False
) -> WebhookAttempt | None:
    """Make attempt ``number`` of a delivery, at most once; record it, queue the next."""
    claimed = _claim(delivery_id, number, manual)
    if claimed is None:
        return None
    row, delivery = claimed
    outcome = sender.send(delivery.endpoint, delivery.event)
    return conclude(row, delivery, outcome)


def _claim(
    delivery_id: str, number: int, manual: bool
) -> tuple[WebhookAttempt, WebhookDelivery] | None:
    try:
        with transaction.atomic():
            delivery = (
                WebhookDelivery.objects.select_for_update(of=("self",))
                .select_related("endpoint", "event")
                .filter(public_id=delivery_id)
                .first()
            )
            if (
                delivery is None
                or delivery.status != DeliveryStatus.PENDING
                or number != delivery.attempt_count + 1
            ):
                return None  # done, or this attempt is stale
            now = timezone.now()
            if not delivery.endpoint.enabled:
                delivery.status = DeliveryStatus.FAILED
                delivery.last_error = "The endpoint is disabled."
                delivery.next_attempt_at = None
                delivery.completed_at = now
                delivery.save()
                return None
            row = WebhookAttempt.objects.create(
                delivery=delivery, number=number, manual=manual, started_at=now
            )
            delivery.attempt_count = number
            delivery.next_attempt_at = None
            delivery.save(
                update_fields=["attempt_count", "next_attempt_at", "updated_at"]
            )
    except IntegrityError:
        return None  # another run of this very attempt took it first
    return row, delivery


def conclude(
    row: WebhookAttempt, delivery: WebhookDelivery, outcome: Outcome
) -> WebhookAttempt | None:
    """Record an attempt's outcome on it and its delivery; schedule a retry if one is due."""
    now = timezone.now()
    next_at: datetime | None = None
    delay = 0.0
    if not outcome.succeeded and outcome.retryable:
        delay = retry_delay(row.number, outcome.retry_after)
        candidate = now + timedelta(seconds=delay)
        window = timedelta(seconds=settings.WEBHOOK_RETRY_WINDOW_S)
        if candidate - delivery.created_at <= window:
            next_at = candidate
    if outcome.succeeded:
        status = DeliveryStatus.SUCCEEDED
    else:
        status = DeliveryStatus.PENDING if next_at else DeliveryStatus.FAILED
    with transaction.atomic():
        # Conditional: the sweep may have closed an attempt it took for dead.
        closed = WebhookAttempt.objects.filter(pk=row.pk, finished_at=None).update(
            finished_at=now,
            succeeded=outcome.succeeded,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error[:500],
            response_body=outcome.response_body[: sender.RESPONSE_EXCERPT_BYTES],
            next_retry_at=next_at,
        )
        if not closed:
            return None
        if outcome.gone:
            WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(
                enabled=False, disabled_reason=DisabledReason.GONE, updated_at=now
            )
        WebhookDelivery.objects.filter(pk=delivery.pk, attempt_count=row.number).update(
            status=status,
            next_attempt_at=next_at,
            last_status_code=outcome.status_code,
            last_error=outcome.error[:500],
            completed_at=None if status == DeliveryStatus.PENDING else now,
            updated_at=now,
        )
        if next_at is not None:
            delivery_id, following = str(delivery.public_id), row.number + 1
            transaction.on_commit(lambda: enqueue(delivery_id, following, delay))
    row.refresh_from_db()
    return row


def retry_delay(number: int, retry_after: float | None = None) -> float:
    """Seconds to wait after attempt ``number`` failed: exponential, jittered, ≥ Retry-After."""
    exponential = settings.WEBHOOK_RETRY_BASE_S * 2 ** min(number - 1, 40)
    delay = min(exponential, settings.WEBHOOK_RETRY_MAX_DELAY_S)
    delay *= random.uniform(0.9, 1.1)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


# ---------------------------------------------------------------- the sweep


def sweep() -> int:
    """Close attempts whose worker died and queue overdue deliveries; return how many."""
    now = timezone.now()
    grace = timedelta(seconds=settings.WEBHOOK_SWEEP_GRACE_S)
    stale_before = now - grace - timedelta(seconds=3 * settings.WEBHOOK_TIMEOUT_S)
    handled = 0
    stale = WebhookAttempt.objects.select_related("delivery").filter(
        finished_at=None, started_at__lt=stale_before
    )[:SWEEP_BATCH]
    for row in stale:
        conclude(row, row.delivery, INTERRUPTED)
        handled += 1
    overdue = (
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now - grace
        )
        .order_by("next_attempt_at")
        .values_list("public_id", "attempt_count")[:SWEEP_BATCH]
    )
    for public_id, attempt_count in overdue:
        enqueue(str(public_id), attempt_count + 1)
        handled += 1
    return handled
