"""Retention: expiresAt from the environment at creation; the purge, scheduled and manual."""

from __future__ import annotations

import threading
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from calls.tests.conftest import wait_for
from config import schedule
from conftest import Tenant
from recordings import services
from recordings.models import Recording
from recordings.tests.conftest import recorded_call

pytestmark = pytest.mark.django_db(transaction=True)


def files(settings: Any) -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*.wav")}


def test_retention_applies_to_new_recordings_and_the_purge_removes_expired_ones(
    tenant: Tenant, api: APIClient, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.patch("/api/v1/environment", {"recordingRetentionDays": 1}, format="json")
    short = recorded_call(tenant.test)
    api.patch("/api/v1/environment", {"recordingRetentionDays": 30}, format="json")
    long = recorded_call(tenant.test)

    def expiry_days(call: Any) -> set[timedelta]:
        rows = api.get(f"/api/v1/recordings?callId={call.public_id}").json()["data"]
        assert len(rows) == 3
        return {_parse(row["expiresAt"]) - _parse(row["createdAt"]) for row in rows}

    # Changing the retention did not touch the recordings made before it.
    assert expiry_days(short) == {timedelta(days=1)}
    assert expiry_days(long) == {timedelta(days=30)}
    short_files = {r.file_name for r in Recording.objects.filter(call=short)}
    long_files = {r.file_name for r in Recording.objects.filter(call=long)}
    assert files(settings) == short_files | long_files

    # Two days later.
    later = timezone.now() + timedelta(days=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    out = StringIO()
    call_command("purge_recordings", "--batch-size", "2", stdout=out)
    output = out.getvalue()
    assert "2 deleted so far" in output and "Purged 3 expired recording(s)." in output
    assert set(Recording.objects.values_list("call_id", flat=True)) == {long.pk}
    assert files(settings) == long_files

    out = StringIO()
    call_command("purge_recordings", stdout=out)
    assert "Purged 0 expired recording(s)." in out.getvalue()
    assert Recording.objects.count() == 3


def _parse(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_two_purges_at_once_delete_every_expired_recording_once(
    tenant: Tenant, settings: Any
) -> None:
    for _ in range(4):
        recorded_call(tenant.test, seconds=0.2)
    keep = recorded_call(tenant.test, seconds=0.2)
    Recording.objects.exclude(call=keep).update(
        created_at=timezone.now() - timedelta(days=40),
        expires_at=timezone.now() - timedelta(days=10),
    )
    counts: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def purge() -> None:
        try:
            start.wait()
            counts.append(services.recordings_purge_expired(batch_size=2))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=purge) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(counts) == 12
    assert set(Recording.objects.values_list("call_id", flat=True)) == {keep.pk}
    assert files(settings) == {r.file_name for r in Recording.objects.all()}


def test_beat_runs_the_purge_on_the_configured_interval() -> None:
    from config.celery_app import app
    from recordings import tasks

    app.finalize()
    entry = app.conf.beat_schedule["purge expired recordings"]
    assert entry["task"] == "recordings.purge"
    assert entry["schedule"] == 3600.0
    assert app.tasks["recordings.purge"].run == tasks.purge_recordings.run


def test_without_beat_the_process_purges_on_a_timer(
    tenant: Tenant, settings: Any
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.RECORDING_PURGE_INTERVAL_S = 0.1
    call = recorded_call(tenant.test)
    Recording.objects.filter(call=call, kind="mixed").update(
        created_at=timezone.now() - timedelta(days=40),
        expires_at=timezone.now() - timedelta(days=10),
    )

    schedule.stop()
    schedule.start()
    try:
        wait_for(lambda: not Recording.objects.filter(call=call, kind="mixed").exists())
    finally:
        schedule.stop()
    assert sorted(Recording.objects.values_list("kind", flat=True)) == [
        "inbound",
        "outbound",
    ]
    assert len(files(settings)) == 2
