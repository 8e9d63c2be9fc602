"""The production shape: real Celery worker processes deliver webhooks, and beat sweeps.

Runs when REDIS_URL is set (Celery is then not eager); the worker consumes a queue of its
own (WEBHOOK_QUEUE), so concurrent test runs on one Redis never take each other's tasks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from calls.tests.conftest import wait_for
from config import schedule
from events import delivery
from events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from events.tests.conftest import API, Receiver, Reply, create_webhook
from tests.processes import celery_worker

pytestmark = [
    pytest.mark.production_shape,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.REDIS_URL, reason="needs a Celery broker (REDIS_URL)"
    ),
]


@pytest.fixture
def webhook_queue(settings: Any) -> str:
    queue = f"{settings.REDIS_KEY_PREFIX}-webhooks-{uuid.uuid4().hex[:8]}"
    settings.WEBHOOK_QUEUE = queue
    return queue


@pytest.fixture
def worker(tmp_path: Path, webhook_queue: str) -> Iterator[Path]:
    """A Celery worker of this run on its own queue, with retries shrunk to 0.3 s."""
    with celery_worker(
        tmp_path,
        CELERY_WORKER_QUEUES=webhook_queue,
        WEBHOOK_QUEUE=webhook_queue,
        WEBHOOK_RETRY_BASE_S="0.3",
    ):
        yield tmp_path / "celery.log"


def test_a_worker_process_delivers_and_retries_a_signed_webhook(
    api: APIClient, receiver: Receiver, worker: Path
) -> None:
    assert not delivery.embedded(), "Celery must not be eager in this shape"
    receiver.answer(Reply(500))
    hook = create_webhook(api, receiver.url, ["session.created"])
    api.post(f"{API}/sessions", {"displayName": "Line"}, format="json")

    first, second = receiver.wait_for(2, timeout=60)
    for request in (first, second):
        Webhook(hook["secret"]).verify(request.body, request.headers)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.at - first.at >= 0.25
    done = wait_for(
        lambda: WebhookDelivery.objects.filter(status="succeeded").first(), timeout=10
    )
    assert done.attempt_count == 2
    assert [a.status_code for a in WebhookAttempt.objects.filter(delivery=done)] == [
        500,
        200,
    ]
    # This process only queued the work: its in-process scheduler never started.
    assert schedule.current() is None
    assert "events.deliver_webhook" in worker.read_text(errors="replace")


def test_beat_sweeps_up_a_delivery_whose_task_was_lost(
    api: APIClient, receiver: Receiver, tmp_path: Path, webhook_queue: str
) -> None:
    hook = create_webhook(api, receiver.url, ["session.created"])
    endpoint = WebhookEndpoint.objects.get(public_id=hook["id"])
    event = Event.objects.create(
        environment=endpoint.environment, type="session.created", data={}
    )
    lost = WebhookDelivery.objects.create(
        environment=endpoint.environment,
        endpoint=endpoint,
        event=event,
        next_attempt_at=timezone.now() - timedelta(minutes=5),
    )
    with celery_worker(
        tmp_path,
        beat=True,
        CELERY_WORKER_QUEUES=webhook_queue,
        WEBHOOK_QUEUE=webhook_queue,
        WEBHOOK_SWEEP_INTERVAL_S="1",
    ):
        [request] = receiver.wait_for(1, timeout=60)
        Webhook(hook["secret"]).verify(request.body, request.headers)
        assert request.headers["webhook-id"] == str(event.public_id)
        wait_for(
            lambda: WebhookDelivery.objects.get(pk=lost.pk).status == "succeeded",
            timeout=10,
        )
