"""The periodic jobs: beat's schedule, and the same jobs run in-process when no beat runs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery import Celery
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from calls import hosts
from calls.models import EngineHost
from calls.tests.conftest import wait_for
from config import schedule
from config.celery_app import app
from conftest import Tenant
from events.models import Event, WebhookDelivery, WebhookEndpoint
from events.tests.conftest import Receiver, create_webhook
from recordings import services as recording_services
from recordings.models import Recording
from recordings.tests.conftest import recorded_call

PURGE = "purge expired recordings"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_beat_and_the_embedded_scheduler_run_the_same_jobs(settings: Any) -> None:
    app.finalize()
    app.autodiscover_tasks(force=True)  # as a worker or beat does when it starts
    beat = app.conf.beat_schedule
    assert list(beat) == [job.name for job in schedule.JOBS]
    for job in schedule.JOBS:
        assert beat[job.name]["task"] == job.task
        assert job.task in app.tasks

    settings.CELERY_TASK_ALWAYS_EAGER = True
    schedule.start()
    local = schedule.current()
    assert local is not None
    assert local.periodic() == list(beat)


def test_beat_reads_intervals_and_queues_from_the_settings(settings: Any) -> None:
    # The project's app took its schedule when it was finalised; a fresh app shows what
    # beat gets from the settings of the moment.
    settings.CALL_REAPER_INTERVAL_S = 7
    settings.WEBHOOK_QUEUE = "hooks"
    fresh = Celery("schedule-test", set_as_current=False)
    schedule.add_to_beat(fresh)
    beat = fresh.conf.beat_schedule
    assert {name: entry["schedule"] for name, entry in beat.items()} == {
        "reap orphaned calls": 7.0,
        PURGE: float(settings.RECORDING_PURGE_INTERVAL_S),
        "purge expired events": float(settings.EVENT_PURGE_INTERVAL_S),
        "sweep stuck assets": float(settings.ASSET_SWEEP_INTERVAL_S),
        "sweep webhook deliveries": float(settings.WEBHOOK_SWEEP_INTERVAL_S),
    }
    assert beat["sweep webhook deliveries"]["options"] == {"queue": "hooks"}
    assert beat[PURGE]["options"] == {}


def test_with_a_beat_this_process_runs_no_periodic_job(settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    schedule.start()
    assert schedule.current() is None
    assert schedule.scheduler().periodic() == []


@pytest.mark.django_db(transaction=True)
def test_without_beat_this_process_runs_every_job_on_its_interval(
    tenant: Tenant, api: APIClient, receiver: Receiver, settings: Any
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CALL_REAPER_INTERVAL_S = 0.2
    settings.RECORDING_PURGE_INTERVAL_S = 0.2
    settings.WEBHOOK_SWEEP_INTERVAL_S = 0.2
    long_ago = timezone.now() - timedelta(days=2)
    # The reaper forgets hosts silent for over an hour past staleness.
    dead = hosts.host_register(host_id="a-process-long-gone", channel_name="")
    EngineHost.objects.filter(pk=dead.pk).update(last_seen=long_ago)
    # The purge deletes recordings past their retention.
    call = recorded_call(tenant.test)
    Recording.objects.filter(call=call, kind="mixed").update(
        created_at=long_ago - timedelta(days=30), expires_at=long_ago
    )
    # The sweep sends a delivery whose attempt was never queued.
    hook = create_webhook(api, receiver.url, ["session.created"])
    endpoint = WebhookEndpoint.objects.get(public_id=hook["id"])
    event = Event.objects.create(
        environment=endpoint.environment, type="session.created", data={}
    )
    lost = WebhookDelivery.objects.create(
        environment=endpoint.environment,
        endpoint=endpoint,
        event=event,
        next_attempt_at=long_ago,
    )

    schedule.start()

    [request] = receiver.wait_for(1)
    Webhook(hook["secret"]).verify(request.body, request.headers)
    assert request.headers["webhook-id"] == str(event.public_id)
    wait_for(
        lambda: WebhookDelivery.objects.get(pk=lost.pk).status == "succeeded",
        timeout=10,
    )
    wait_for(lambda: not EngineHost.objects.filter(pk=dead.pk).exists(), timeout=10)
    wait_for(
        lambda: not Recording.objects.filter(call=call, kind="mixed").exists(),
        timeout=10,
    )
    assert sorted(
        Recording.objects.filter(call=call).values_list("kind", flat=True)
    ) == ["inbound", "outbound"]


@pytest.fixture
def only_the_purge_runs(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No beat; the purge runs every 50 ms, the other jobs not within a test."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.RECORDING_PURGE_INTERVAL_S = 0.05
    settings.CALL_REAPER_INTERVAL_S = 3600
    settings.WEBHOOK_SWEEP_INTERVAL_S = 3600
    monkeypatch.setattr(recording_services, "recordings_finalise_leftovers", lambda: [])


@pytest.mark.usefixtures("only_the_purge_runs")
def test_a_run_still_going_when_the_next_is_due_delays_it_never_overlaps_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    active = 0
    most = 0
    runs = 0
    lock = threading.Lock()
    release = threading.Event()
    first_started = threading.Event()

    def slow_purge(batch_size: int) -> int:
        nonlocal active, most, runs
        with lock:
            active += 1
            most = max(most, active)
        first_started.set()
        release.wait(10)  # the first run outlasts many intervals
        with lock:
            active -= 1
            runs += 1
        return 0

    monkeypatch.setattr(recording_services, "recordings_purge_expired", slow_purge)
    schedule.start()
    assert first_started.wait(10)
    time.sleep(0.3)  # six intervals in which a second run could wrongly start
    with lock:
        assert (active, runs) == (1, 0)
    release.set()
    wait_for(lambda: runs >= 3)
    assert most == 1


@pytest.mark.usefixtures("only_the_purge_runs")
def test_a_failing_job_is_logged_and_runs_again_at_the_next_interval(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = 0
    recovered = threading.Event()

    def failing_purge(batch_size: int) -> int:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise OSError("storage unreachable")
        recovered.set()
        return 0

    monkeypatch.setattr(recording_services, "recordings_purge_expired", failing_purge)
    with caplog.at_level(logging.INFO, logger="config.scheduler"):
        schedule.start()
        assert recovered.wait(10)
        schedule.stop()
    failures = [
        r
        for r in caplog.records
        if r.name == "config.scheduler" and r.levelno >= logging.ERROR
    ]
    assert [r.getMessage() for r in failures] == [f"Periodic job {PURGE!r} failed"]
    assert "storage unreachable" in caplog.text
    assert f"Periodic job {PURGE!r} succeeded again" in caplog.text
