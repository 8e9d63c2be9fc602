"""Bounded growth and the webhook outbox.

Events, their deliveries and attempts are purged past the environment's retention, and
idempotency records past 24 h, in batches; an event is never committed without its
deliveries, so a process that dies before queueing them loses nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.models import IdempotencyRecord
from accounts.selectors import environment_of
from conftest import Tenant
from events import delivery, retention, services
from events.models import (
    DeliveryStatus,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from events.tests.conftest import create_webhook

pytestmark = [pytest.mark.django_db(transaction=True)]


def _emit(environment: Any, n: int) -> list[Event]:
    return [
        services.event_emit(
            environment=environment, type="session.created", data={"n": n + i}
        )
        for i in range(3)
    ]


def test_events_deliveries_attempts_and_idempotency_records_past_retention_go(
    tenant: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "enqueue", lambda *args, **kwargs: None)
    live = environment_of(tenant.account, "live")
    test = environment_of(tenant.account, "test")
    test.event_retention_days = 7
    test.save()
    create_webhook(tenant.client("test"), "http://127.0.0.1:9/hook")
    old = _emit(test, 0)
    young = _emit(test, 10)
    kept_elsewhere = _emit(live, 20)  # 30 days in live: 10 days old is kept
    ten_days_ago = timezone.now() - timedelta(days=10)
    Event.objects.filter(pk__in=[e.pk for e in old + kept_elsewhere]).update(
        created_at=ten_days_ago
    )
    old_deliveries = list(WebhookDelivery.objects.filter(event__in=old))
    assert len(old_deliveries) == 3
    for row in old_deliveries:
        WebhookAttempt.objects.create(delivery=row, number=1, started_at=ten_days_ago)
    IdempotencyRecord.objects.create(environment=test, key="fresh", fingerprint="x")
    stale = IdempotencyRecord.objects.create(
        environment=test, key="stale", fingerprint="y"
    )
    IdempotencyRecord.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - timedelta(hours=25)
    )

    counts = retention.purge_expired(batch=2)

    assert counts == {
        "events": 3,
        "deliveries": 3,
        "attempts": 3,
        "idempotencyRecords": 1,
    }
    remaining = set(Event.objects.values_list("pk", flat=True))
    assert remaining == {e.pk for e in young + kept_elsewhere}
    assert WebhookDelivery.objects.filter(event__in=young).count() == 3
    assert not WebhookAttempt.objects.exists()
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]
    # Nothing left to do: a second run deletes nothing.
    assert set(retention.purge_expired().values()) == {0}


def test_an_event_commits_with_its_deliveries_and_the_sweep_queues_what_was_lost(
    tenant: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = environment_of(tenant.account, "test")
    webhook = create_webhook(tenant.client("test"), "http://127.0.0.1:9/hook")
    endpoint = WebhookEndpoint.objects.get(public_id=webhook["id"])

    def lost(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the process died before queueing")

    monkeypatch.setattr(delivery, "enqueue", lost)
    with transaction.atomic():
        event = services.event_emit(
            environment=environment, type="session.created", data={}
        )
        # In the same transaction as the event: the outbox row.
        assert WebhookDelivery.objects.filter(event=event, endpoint=endpoint).exists()
    row = WebhookDelivery.objects.get(event=event)
    assert row.status == DeliveryStatus.PENDING and row.attempt_count == 0

    queued: list[tuple[str, int]] = []
    monkeypatch.setattr(
        delivery,
        "enqueue",
        lambda public_id, number, **kw: queued.append((public_id, number)),
    )
    settings.WEBHOOK_SWEEP_GRACE_S = 0
    WebhookDelivery.objects.filter(pk=row.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    assert delivery.sweep() >= 1
    assert (str(row.public_id), 1) in queued


def test_an_event_that_rolls_back_leaves_no_delivery(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[Any] = []
    monkeypatch.setattr(delivery, "enqueue", lambda *args, **kw: queued.append(args))
    environment = environment_of(tenant.account, "test")
    create_webhook(tenant.client("test"), "http://127.0.0.1:9/hook")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.event_emit(environment=environment, type="session.created", data={})
        raise RuntimeError("the change failed")
    assert not Event.objects.filter(type="session.created", data={}).exists()
    assert not WebhookDelivery.objects.exists() and queued == []
