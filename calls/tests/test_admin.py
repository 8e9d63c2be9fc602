from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from calls.models import Call, CallState
from calls.runtime import control
from calls.runtime.engine import Engine
from calls.tests.conftest import wait_for
from calls.tests.test_runtime import ready_session
from conftest import Tenant


@pytest.fixture
def staff_client(client, transactional_db):
    user = get_user_model().objects.create_superuser(
        "staff", "staff@example.com", "pw-staff-123"
    )
    client.force_login(user)
    return client


@pytest.mark.usefixtures("fast_network")
def test_staff_end_call_action_ends_the_live_call_like_the_api(
    engine: Engine, tenant: Tenant, staff_client
) -> None:
    session = ready_session(tenant)
    call = control.call_place(
        session=session, to="15550000001@s.whatsapp.net", record=False
    ).call
    wait_for(lambda: Call.objects.get(pk=call.pk).state == CallState.ACTIVE)

    listing = staff_client.get("/admin/calls/call/?live=yes")
    assert listing.status_code == 200
    assert str(call.public_id) in listing.content.decode()

    response = staff_client.post(
        "/admin/calls/call/", {"action": "end_calls", "_selected_action": [call.pk]}
    )
    assert response.status_code == 302
    call.refresh_from_db()
    assert call.state == CallState.ENDED and call.end_reason == "ended_by_staff"
    assert str(call.public_id) not in engine.runtimes

    detail = staff_client.get(f"/admin/calls/call/{call.pk}/change/").content.decode()
    assert "call.ended" in detail and "call.state" in detail


def test_admin_call_search_finds_by_peer(
    staff_client, tenant: Tenant, engine: Engine, fast_network
) -> None:
    session = ready_session(tenant)
    call = control.call_place(
        session=session, to="15557770001@s.whatsapp.net", record=False
    ).call
    found = staff_client.get("/admin/calls/call/?q=15557770001").content.decode()
    assert str(call.public_id) in found
    assert staff_client.get("/admin/calls/session/").status_code == 200
    control.call_end(call)


@pytest.fixture
def tasks_in_process():
    """Recordings are finalised in this process (no Celery worker runs here)."""
    from config.celery_app import app as celery_app

    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.mark.usefixtures("fast_network", "tasks_in_process")
def test_staff_end_a_call_from_its_page_and_the_log_says_who(
    engine: Engine, tenant: Tenant, staff_client
) -> None:
    from django.contrib.admin.models import LogEntry

    session = ready_session(tenant)
    call = control.call_place(
        session=session, to="15550000001@s.whatsapp.net", record=True
    ).call
    wait_for(lambda: Call.objects.get(pk=call.pk).state == CallState.ACTIVE)
    page = staff_client.get(f"/admin/calls/call/{call.pk}/change/").content.decode()
    # A record: no Save, no Delete; an End call button while it is live.
    assert 'name="_save"' not in page and "deletelink" not in page
    assert 'data-testid="admin-end-call"' in page
    assert staff_client.get(f"/admin/calls/call/{call.pk}/end/").status_code == 404

    ended = staff_client.post(f"/admin/calls/call/{call.pk}/end/")
    assert ended.status_code == 302
    call.refresh_from_db()
    assert (call.state, call.end_reason) == (CallState.ENDED, "ended_by_staff")
    entry = LogEntry.objects.get(object_id=str(call.pk))
    assert (
        entry.user.username == "staff"
        and "ended_by_staff" in entry.get_change_message()
    )

    # Once ended: the timeline names each state, the recordings play inline.
    from recordings.models import Recording

    wait_for(lambda: Recording.objects.filter(call=call).count() == 3, timeout=15)
    page = staff_client.get(f"/admin/calls/call/{call.pk}/change/").content.decode()
    assert "admin-end-call" not in page
    assert "<td>active</td>" in page and "<td>ended</td>" in page
    recording = Recording.objects.filter(call=call).first()
    assert recording is not None
    audio_url = f"/admin/calls/call/{call.pk}/recordings/{recording.pk}/audio/"
    assert audio_url in page
    audio = staff_client.get(audio_url)
    assert audio.status_code == 200
    assert b"".join(audio.streaming_content)[:4] == b"RIFF"


def test_people_without_staff_rights_cannot_end_calls(
    client, tenant: Tenant, engine: Engine, fast_network
) -> None:
    session = ready_session(tenant)
    call = control.call_place(
        session=session, to="15550000001@s.whatsapp.net", record=False
    ).call
    user = get_user_model().objects.create_user("viewer", password="pw-viewer-123")
    user.is_staff = True
    user.save()
    client.force_login(user)
    assert client.post(f"/admin/calls/call/{call.pk}/end/").status_code == 403
    control.call_end(call)
