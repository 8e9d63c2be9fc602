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
    assert call.state == CallState.ENDED and call.end_reason == "completed"
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
