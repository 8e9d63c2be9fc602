"""The call console page and the call it places (its audio is tested in test_browser)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from calls import services as call_services
from calls.models import Call, CallState
from calls.runtime import control
from calls.tests.conftest import wait_for
from conftest import Tenant
from dashboard.forms import to_jid
from dashboard.tests.conftest import paired_session

JSON = "application/json"


@pytest.mark.parametrize(
    ("typed", "jid"),
    [
        ("+1 555 000 0001", "15550000001@s.whatsapp.net"),
        ("(555) 000-0002", "5550000002@s.whatsapp.net"),
        ("15550000003@s.whatsapp.net", "15550000003@s.whatsapp.net"),
    ],
)
def test_numbers_are_read_as_people_type_them(typed: str, jid: str) -> None:
    assert to_jid(typed) == jid


@pytest.mark.django_db
def test_the_console_offers_the_lines_that_can_call(
    owner: Client, tenant: Tenant
) -> None:
    ready = paired_session(tenant.test, "Ready line")
    call_services.session_create(environment=tenant.test, display_name="Unpaired")
    paired_session(tenant.live, "Live line")
    page = owner.get("/dashboard/console/").content.decode()
    assert f'<option value="{ready.public_id}"' in page
    assert "Unpaired" not in page and "Live line" not in page
    assert 'value="+1 555 000 0001"' in page  # the echo peer, to try it out
    assert "console-worklets.js" in page and "console.js" in page


@pytest.mark.django_db
def test_without_a_ready_line_the_console_says_what_to_do(owner: Client) -> None:
    page = owner.get("/dashboard/console/").content.decode()
    assert "No line is ready to call from" in page
    assert 'id="console-start"' not in page


@pytest.mark.django_db
def test_members_cannot_place_calls(member: Client, tenant: Tenant) -> None:
    session = paired_session(tenant.test)
    page = member.get("/dashboard/console/").content.decode()
    assert "Only owners and admins" in page and 'id="console-start"' not in page
    response = member.post(
        "/dashboard/console/call", {"session": session.public_id, "to": "15550000001"}
    )
    assert response.status_code == 403
    assert not Call.objects.exists()


@pytest.mark.django_db
def test_a_bad_number_is_explained(owner: Client, tenant: Tenant) -> None:
    session = paired_session(tenant.test)
    response = owner.post(
        "/dashboard/console/call",
        {"session": session.public_id, "to": "12"},
        HTTP_ACCEPT=JSON,
    )
    assert response.status_code == 400
    assert "6 to 15 digits" in response.json()["error"]["detail"]
    assert not Call.objects.exists()


@pytest.mark.django_db
def test_an_outsiders_line_cannot_be_used(
    owner: Client, outsider: Tenant, tenant: Tenant
) -> None:
    for session in (paired_session(outsider.test), paired_session(tenant.live)):
        response = owner.post(
            "/dashboard/console/call",
            {"session": session.public_id, "to": "15550000001"},
            HTTP_ACCEPT=JSON,
        )
        assert response.status_code == 404
    assert not Call.objects.exists()


def test_starting_a_call_returns_where_its_media_socket_is(
    owner: Client, tenant: Tenant, engine: Any, fast_network: Any
) -> None:
    session = paired_session(tenant.test)
    response = owner.post(
        "/dashboard/console/call",
        {"session": session.public_id, "to": "+1 555 000 0001", "record": "on"},
        HTTP_ACCEPT=JSON,
    )
    assert response.status_code == 201, response.content
    body = response.json()
    call = Call.objects.get(public_id=body["call"]["callId"])
    assert call.peer_address == "15550000001@s.whatsapp.net" and call.record
    base = f"/api/v1/sessions/{session.public_id}/calls/{call.public_id}"
    assert body["mediaPath"] == f"{base}/media"
    assert body["endUrl"].endswith(f"/{call.public_id}/end")
    wait_for(lambda: Call.objects.get(pk=call.pk).state == CallState.ACTIVE)
    # An owner can come back to a live call from its page and join it in the console.
    page = owner.get(
        f"/dashboard/console/?session={session.public_id}&call={call.public_id}"
    ).content.decode()
    assert 'id="console-join"' in page and body["mediaPath"] in page


def test_a_line_that_is_not_ready_is_refused_with_the_reason(
    owner: Client, tenant: Tenant, engine: Any
) -> None:
    session = paired_session(tenant.test)
    control.session_disconnect(session=session)
    response = owner.post(
        "/dashboard/console/call",
        {"session": session.public_id, "to": "15550000001"},
        HTTP_ACCEPT=JSON,
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "session_not_ready"
