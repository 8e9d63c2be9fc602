"""Bounded growth for calls: ended calls and deleted sessions past the environment's
``callRetentionDays`` are purged in batches by the periodic purge, never a live call,
never a call a recording (stored, or still in the spool) keeps."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Environment
from calls import retention
from calls import services as call_services
from calls.models import Call, CallState, Direction, Session
from calls.tests.conftest import wait_for
from config import schedule
from conftest import Tenant, is_problem
from recordings import services as recording_services
from recordings import spool
from recordings.models import Recording
from recordings.tests.conftest import ended_call, ready_session, recorded_call
from streams.models import Stream, StreamState

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/environment"
PURGE = "purge expired events"  # the beat entry that runs events.purge_expired


@pytest.fixture(autouse=True)
def spool_dir(settings: Any, tmp_path: Path) -> Path:
    settings.RECORDING_SPOOL_DIR = tmp_path / "spool"
    return Path(settings.RECORDING_SPOOL_DIR)


def ended_days_ago(environment: Environment, days: float, *, streams: int = 0) -> Call:
    """An ended call (unrecorded) that ended ``days`` ago, with stopped streams."""
    call = ended_call(environment, record=False)
    backdate(call, days)
    for _ in range(streams):
        Stream.objects.create(
            environment=environment,
            call=call,
            url="wss://agent.example/stream",
            type="oneway",
            channel="both",
            format="pcm16_16000",
            dialect="wavix",
            state=StreamState.STOPPED,
            stopped_at=call.ended_at,
        )
    return call


def backdate(call: Call, days: float) -> None:
    ended_at = timezone.now() - timedelta(days=days)
    Call.objects.filter(pk=call.pk).update(
        created_at=ended_at - timedelta(minutes=5), ended_at=ended_at
    )
    call.refresh_from_db()


def set_retention(environment: Environment, days: int) -> None:
    Environment.objects.filter(pk=environment.pk).update(call_retention_days=days)


def left(*calls: Call) -> set[int]:
    """Which of these calls still exist."""
    return set(
        Call.objects.filter(pk__in=[c.pk for c in calls]).values_list("pk", flat=True)
    )


def stored_files(settings: Any) -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*.wav")}


def test_ended_calls_past_retention_go_with_their_streams_and_the_rest_stay(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    set_retention(tenant.test, 7)
    old = [ended_days_ago(tenant.test, 10, streams=2), ended_days_ago(tenant.test, 8)]
    young = ended_days_ago(tenant.test, 6, streams=1)

    with caplog.at_level(logging.INFO, logger="calls.retention"):
        counts = retention.purge_expired()

    assert counts == {"calls": 2, "streams": 2, "sessions": 0}
    assert left(*old, young) == {young.pk}
    assert list(Stream.objects.values_list("call_id", flat=True)) == [young.pk]
    assert [r.getMessage() for r in caplog.records if r.name == "calls.retention"] == [
        "Purged past retention: 2 calls, 2 streams, 0 sessions"
    ]
    # Their sessions were never deleted: they stay. The API lists what is left.
    assert Session.objects.count() == 3
    listed = tenant.client("test").get("/api/v1/calls").json()["data"]
    assert [c["callId"] for c in listed] == [str(young.public_id)]
    # Nothing left to do: a second run deletes nothing and logs nothing.
    caplog.clear()
    assert retention.purge_expired() == {"calls": 0, "streams": 0, "sessions": 0}
    assert not [r for r in caplog.records if r.name == "calls.retention"]


def test_a_call_with_an_unexpired_recording_is_kept_with_its_files(
    tenant: Tenant, settings: Any
) -> None:
    set_retention(tenant.test, 1)
    recorded = recorded_call(tenant.test)
    backdate(recorded, 5)  # the recordings are kept 30 days from when they were made
    unrecorded = ended_days_ago(tenant.test, 5)
    files = stored_files(settings)
    assert len(files) == 3

    assert retention.purge_expired() == {"calls": 1, "streams": 0, "sessions": 0}

    assert left(recorded, unrecorded) == {recorded.pk}
    assert Recording.objects.filter(call=recorded).count() == 3
    assert stored_files(settings) == files
    data = tenant.client("test").get(f"/api/v1/recordings?callId={recorded.public_id}")
    assert len(data.json()["data"]) == 3


def test_an_expired_recording_keeps_its_call_until_the_recordings_purge_took_its_file(
    tenant: Tenant, settings: Any
) -> None:
    set_retention(tenant.test, 1)
    recorded = recorded_call(tenant.test)
    backdate(recorded, 40)
    Recording.objects.filter(call=recorded).update(
        created_at=recorded.ended_at, expires_at=timezone.now() - timedelta(days=10)
    )
    assert len(stored_files(settings)) == 3

    # The rows are still there (the recordings purge has not run): the call stays.
    assert retention.purge_expired() == {"calls": 0, "streams": 0, "sessions": 0}
    assert left(recorded) == {recorded.pk}

    assert recording_services.recordings_purge_expired(batch_size=10) == 3
    assert stored_files(settings) == set()
    assert retention.purge_expired() == {"calls": 1, "streams": 0, "sessions": 0}
    assert left(recorded) == set()


def test_a_call_whose_wavs_still_wait_in_the_spool_is_kept(tenant: Tenant) -> None:
    set_retention(tenant.test, 1)
    waiting = ended_days_ago(tenant.test, 5)
    directory = spool.call_dir(str(waiting.public_id))
    directory.mkdir(parents=True)
    (directory / "mixed.wav").write_bytes(b"RIFF")

    assert retention.purge_expired() == {"calls": 0, "streams": 0, "sessions": 0}
    assert left(waiting) == {waiting.pk}

    spool.remove(directory)  # finalised (nothing worth storing)
    assert retention.purge_expired() == {"calls": 1, "streams": 0, "sessions": 0}


def test_recordings_committed_while_the_purge_runs_keep_their_call(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_retention(tenant.test, 1)
    call = ended_days_ago(tenant.test, 5, streams=1)
    holding = threading.Event()
    candidates_read = threading.Event()
    failures: list[BaseException] = []

    def read(call_id: str) -> bool:
        candidates_read.set()
        return False

    def finalise() -> None:
        # As a finalisation does: lock the call and add its rows; it commits once the
        # purge has chosen the call (the rows were not committed when it looked).
        try:
            with transaction.atomic():
                list(Call.objects.select_for_update().filter(pk=call.pk).values("pk"))
                Recording.objects.create(
                    environment=tenant.test,
                    call=call,
                    kind="mixed",
                    file_name="env/x/recordings/y/mixed.wav",
                    duration_ms=1000,
                    size_bytes=32_044,
                    expires_at=timezone.now() + timedelta(days=30),
                )
                holding.set()
                assert candidates_read.wait(10)
                time.sleep(0.2)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    monkeypatch.setattr(retention, "_keeps_call", [read])
    finaliser = threading.Thread(target=finalise)
    finaliser.start()
    assert holding.wait(10)

    counts = retention.purge_expired()

    finaliser.join(10)
    assert failures == [] and candidates_read.is_set()
    assert counts == {"calls": 0, "streams": 0, "sessions": 0}
    assert left(call) == {call.pk}
    assert Stream.objects.filter(call=call).count() == 1


def test_calls_that_have_not_ended_are_kept_however_old(tenant: Tenant) -> None:
    set_retention(tenant.test, 1)
    session = ready_session(tenant.test)
    live = []
    for to in (None, CallState.RINGING, CallState.ACTIVE):
        call = call_services.call_create(
            session=session,
            peer_address="15550000001@s.whatsapp.net",
            direction=Direction.OUTGOING,
            host="gone",
        )
        if to == CallState.ACTIVE:
            call_services.call_transition(call_id=call.pk, to=CallState.RINGING)
        if to is not None:
            call_services.call_transition(call_id=call.pk, to=to)
        live.append(call)
    long_ago = timezone.now() - timedelta(days=3000)
    Call.objects.filter(pk__in=[c.pk for c in live]).update(
        created_at=long_ago, ringing_at=long_ago, answered_at=long_ago
    )
    # Its session was deleted long ago too: its live calls keep it.
    Session.objects.filter(pk=session.pk).update(deleted_at=long_ago)
    states = set(
        Call.objects.filter(pk__in=[c.pk for c in live]).values_list("state", flat=True)
    )
    assert states == {CallState.INITIATING, CallState.RINGING, CallState.ACTIVE}

    assert retention.purge_expired() == {"calls": 0, "streams": 0, "sessions": 0}
    assert left(*live) == {c.pk for c in live}
    assert Session.objects.filter(pk=session.pk).exists()


def test_each_environment_keeps_its_calls_for_its_own_retention(
    tenant: Tenant, outsider: Tenant
) -> None:
    set_retention(tenant.test, 7)
    set_retention(tenant.live, 30)  # outsider's environments keep the default, 90
    test_old = ended_days_ago(tenant.test, 10)
    live_young = ended_days_ago(tenant.live, 10)
    live_old = ended_days_ago(tenant.live, 31)
    outsider_young = ended_days_ago(outsider.test, 31)
    outsider_old = ended_days_ago(outsider.live, 91)

    assert retention.purge_expired() == {"calls": 3, "streams": 0, "sessions": 0}

    everything = (test_old, live_young, live_old, outsider_young, outsider_old)
    assert left(*everything) == {live_young.pk, outsider_young.pk}


def test_with_batches_of_two_five_calls_all_go_three_statements_each(
    tenant: Tenant,
) -> None:
    set_retention(tenant.test, 7)
    calls = [ended_days_ago(tenant.test, 8, streams=1) for _ in range(5)]
    sessions = Session.objects.filter(calls__in=calls)
    sessions.update(deleted_at=timezone.now() - timedelta(days=8))

    with CaptureQueriesContext(connection) as queries:
        counts = retention.purge_expired(batch=2)

    assert counts == {"calls": 5, "streams": 5, "sessions": 5}
    assert left(*calls) == set() and not Stream.objects.exists()
    assert not Session.objects.exists()
    deletes = [q["sql"].split(" WHERE ")[0] for q in queries]
    assert deletes.count('DELETE FROM "calls_call"') == 3
    assert deletes.count('DELETE FROM "streams_stream"') == 3
    assert deletes.count('DELETE FROM "calls_session"') == 3


def test_a_deleted_session_goes_once_its_calls_are_gone_and_its_retention_is_over(
    tenant: Tenant,
) -> None:
    set_retention(tenant.test, 7)
    long_ago = timezone.now() - timedelta(days=10)
    with_old_call = ended_days_ago(tenant.test, 10).session
    kept = recorded_call(tenant.test)
    backdate(kept, 10)  # its recordings keep it, and it keeps its session
    with_kept_call = kept.session
    without_calls = call_services.session_create(
        environment=tenant.test, display_name="never called"
    )
    recently = call_services.session_create(environment=tenant.test, display_name="r")
    alive = call_services.session_create(environment=tenant.test, display_name="a")
    for session in (with_old_call, with_kept_call, without_calls, recently):
        call_services.session_go_offline(session=session, delete=True)
    Session.objects.filter(
        pk__in=[with_old_call.pk, with_kept_call.pk, without_calls.pk]
    ).update(deleted_at=long_ago)
    Session.objects.filter(pk=alive.pk).update(created_at=long_ago)

    assert retention.purge_expired() == {"calls": 1, "streams": 0, "sessions": 2}

    remaining = set(Session.objects.values_list("pk", flat=True))
    assert remaining == {with_kept_call.pk, recently.pk, alive.pk}


def test_every_row_that_points_at_a_call_goes_with_it_or_keeps_it() -> None:
    # A new model with a foreign key to Call must decide: without registering, its
    # rows keep their call for ever.
    pointing = {relation.related_model for relation in retention._relations(Call)}
    assert pointing == {Stream, Recording}
    assert retention._goes_with_call == [Stream]
    assert {r.related_model for r in retention._relations(Session)} == {Call}


def test_the_call_retention_is_a_setting_of_the_environment(
    tenant: Tenant, outsider: Tenant
) -> None:
    client = tenant.client("test")
    assert client.get(URL).json()["data"]["callRetentionDays"] == 90

    patched = client.patch(URL, {"callRetentionDays": 3650}, format="json")

    assert patched.status_code == 200, patched.content
    assert patched.json()["data"]["callRetentionDays"] == 3650
    assert client.get(URL).json()["data"]["callRetentionDays"] == 3650
    kept = dict(Environment.objects.values_list("pk", "call_retention_days"))
    assert kept == {
        tenant.test.pk: 3650,
        tenant.live.pk: 90,
        outsider.test.pk: 90,
        outsider.live.pk: 90,
    }
    assert client.patch(URL, {"callRetentionDays": 1}, format="json").status_code == 200


@pytest.mark.parametrize("value", [0, -1, 3651, "ninety", None, 1.5, True])
def test_a_call_retention_out_of_bounds_is_refused_with_problem_details(
    tenant: Tenant, value: Any
) -> None:
    client = tenant.client("live")

    response = client.patch(URL, {"callRetentionDays": value}, format="json")

    problem = is_problem(response, 400, "validation_error")
    assert problem["param"] == "callRetentionDays"
    assert Environment.objects.get(pk=tenant.live.pk).call_retention_days == 90


def test_the_periodic_purge_deletes_ended_calls_past_retention(
    tenant: Tenant, settings: Any
) -> None:
    set_retention(tenant.test, 7)
    old = ended_days_ago(tenant.test, 8, streams=1)
    young = ended_days_ago(tenant.test, 6)
    job = next(job for job in schedule.JOBS if job.name == PURGE)

    # As a worker runs it when beat queues it.
    counts = job.run()

    assert counts == {
        "events": 0,
        "deliveries": 0,
        "attempts": 0,
        "idempotencyRecords": 0,
        "calls": 1,
        "streams": 1,
        "sessions": 0,
    }
    assert left(old, young) == {young.pk}

    # And as the embedded scheduler runs it when no beat does.
    older = ended_days_ago(tenant.test, 9)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.EVENT_PURGE_INTERVAL_S = 0.05
    settings.CALL_REAPER_INTERVAL_S = 3600
    settings.RECORDING_PURGE_INTERVAL_S = 3600
    settings.ASSET_SWEEP_INTERVAL_S = 3600
    settings.WEBHOOK_SWEEP_INTERVAL_S = 3600
    schedule.start()
    wait_for(lambda: not left(older))
    schedule.stop()
    assert left(young) == {young.pk}
