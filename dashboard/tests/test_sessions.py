"""Sessions: create, connect and pair by QR or code, simulate the scan, disconnect, log out,
delete; roles, outsiders and the other environment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from calls import services as call_services
from calls.models import ConnectionState, Session
from conftest import Tenant
from dashboard.qr import qr_data_uri
from dashboard.templatetags.wording import phone_number
from dashboard.tests.conftest import paired_session
from events.models import Event

pytestmark = pytest.mark.django_db


def connecting_session(tenant: Tenant, environment: str = "test") -> Session:
    session = call_services.session_create(
        environment=getattr(tenant, environment), display_name="Front desk"
    )
    return call_services.session_connect(session=session)


def test_the_list_shows_the_environments_sessions_only(
    owner: Client, tenant: Tenant, outsider: Tenant
) -> None:
    call_services.session_create(environment=tenant.test, display_name="Mine (test)")
    call_services.session_create(environment=tenant.live, display_name="Mine (live)")
    call_services.session_create(environment=outsider.test, display_name="Theirs")
    page = owner.get("/dashboard/sessions/").content.decode()
    assert "Mine (test)" in page
    assert "Mine (live)" not in page and "Theirs" not in page
    rows = owner.get("/dashboard/sessions/rows").content.decode()
    assert "Mine (test)" in rows and "<html" not in rows


def test_an_owner_creates_a_session(owner: Client, tenant: Tenant) -> None:
    response = owner.post("/dashboard/sessions/", {"display_name": "Support line"})
    session = Session.objects.get(environment=tenant.test)
    assert response["Location"] == f"/dashboard/sessions/{session.public_id}/"
    assert session.display_name == "Support line"
    assert Event.objects.filter(type="session.created").count() == 1
    page = owner.get(response["Location"]).content.decode()
    assert "Session “Support line” created." in page
    assert "Connect and pair" in page


def test_a_session_needs_a_name(owner: Client, tenant: Tenant) -> None:
    response = owner.post("/dashboard/sessions/", {"display_name": ""})
    assert response.status_code == 400
    assert "Give the line a name" in response.content.decode()
    assert not Session.objects.exists()


def test_connecting_shows_the_pairing_qr_as_an_image_of_its_payload(
    owner: Client, tenant: Tenant
) -> None:
    session = call_services.session_create(environment=tenant.test, display_name="L")
    response = owner.post(f"/dashboard/sessions/{session.public_id}/connect")
    assert response["Location"] == f"/dashboard/sessions/{session.public_id}/"
    session.refresh_from_db()
    assert session.connection_state == ConnectionState.CONNECTING
    page = owner.get(response["Location"]).content.decode()
    assert 'id="qr-image"' in page
    assert f'src="{qr_data_uri(session.line_state["qr"])}"' in page
    assert qr_data_uri(session.line_state["qr"]).startswith("data:image/svg+xml")
    assert 'data-testid="simulate-scan"' in page


def test_the_qr_panel_brings_a_new_qr_once_the_old_one_expired(
    owner: Client, tenant: Tenant
) -> None:
    session = connecting_session(tenant)
    before = session.line_state["qr"]
    Session.objects.filter(pk=session.pk).update(
        line_state={
            **session.line_state,
            "qrCreatedAt": (timezone.now() - timedelta(minutes=5)).isoformat(),
        }
    )
    panel = owner.get(f"/dashboard/sessions/{session.public_id}/panel")
    session.refresh_from_db()
    assert session.line_state["qr"] != before
    html = panel.content.decode()
    assert (
        qr_data_uri(session.line_state["qr"]) in html
        and qr_data_uri(before) not in html
    )
    assert Event.objects.filter(type="auth.qr").count() == 2
    # The panel listens for its session's events, and asks again when the QR expires.
    page = owner.get(f"/dashboard/sessions/{session.public_id}/").content.decode()
    assert f'hx-trigger="sb-session-{session.public_id} from:body' in page
    assert 'hx-trigger="load delay:' in page


def test_a_pairing_code_is_issued_for_a_phone_number(
    owner: Client, tenant: Tenant
) -> None:
    session = connecting_session(tenant)
    url = f"/dashboard/sessions/{session.public_id}/pairing-code"
    refused = owner.post(url, {"phone_number": "call me"}, follow=True)
    assert "Give the phone number in digits" in refused.content.decode()
    response = owner.post(url, {"phone_number": "+1 555 123 0000".replace(" ", "")})
    session.refresh_from_db()
    assert session.line_state["pairingCode"]
    page = owner.get(response["Location"]).content.decode()
    assert f"Pairing code {session.line_state['pairingCode']}" in page
    assert 'data-testid="pairing-code">' + session.line_state["pairingCode"] in page


def test_the_simulated_scan_pairs_a_test_session(owner: Client, tenant: Tenant) -> None:
    session = connecting_session(tenant)
    response = owner.post(f"/dashboard/sessions/{session.public_id}/scan", follow=True)
    session.refresh_from_db()
    assert session.paired and session.connected
    page = response.content.decode()
    assert f"Paired as {phone_number(session.address)}" in page
    assert 'id="qr-image"' not in page
    assert "Place a call" in page


def test_live_sessions_have_no_simulated_scan(
    as_role: Callable[..., Client], tenant: Tenant
) -> None:
    owner = as_role("owner", tenant.live)
    session = connecting_session(tenant, "live")
    page = owner.get(f"/dashboard/sessions/{session.public_id}/").content.decode()
    assert 'id="qr-image"' in page and "simulate-scan" not in page
    assert (
        owner.post(f"/dashboard/sessions/{session.public_id}/scan").status_code == 404
    )
    session.refresh_from_db()
    assert not session.paired


def test_scanning_twice_is_refused_with_a_message(
    owner: Client, tenant: Tenant
) -> None:
    session = paired_session(tenant.test)
    response = owner.post(
        f"/dashboard/sessions/{session.public_id}/scan",
        HTTP_REFERER=f"http://testserver/dashboard/sessions/{session.public_id}/",
        follow=True,
    )
    assert "The session is already paired." in response.content.decode()


def test_disconnect_keeps_the_pairing_and_reconnect_needs_no_qr(
    owner: Client, tenant: Tenant
) -> None:
    session = paired_session(tenant.test)
    owner.post(f"/dashboard/sessions/{session.public_id}/disconnect")
    session.refresh_from_db()
    assert session.paired and session.connection_state == "disconnected"
    page = owner.get(f"/dashboard/sessions/{session.public_id}/").content.decode()
    assert "Reconnect" in page
    owner.post(f"/dashboard/sessions/{session.public_id}/connect")
    session.refresh_from_db()
    assert session.connected and "qr" not in session.line_state


def test_logout_unlinks_the_line_after_a_confirmation(
    owner: Client, tenant: Tenant
) -> None:
    session = paired_session(tenant.test)
    page = owner.get(f"/dashboard/sessions/{session.public_id}/").content.decode()
    assert 'data-confirm="Log this line out?' in page
    owner.post(f"/dashboard/sessions/{session.public_id}/logout")
    session.refresh_from_db()
    assert not session.paired and not session.address


def test_delete_removes_the_session_from_the_dashboard(
    owner: Client, tenant: Tenant
) -> None:
    session = paired_session(tenant.test)
    page = owner.get(f"/dashboard/sessions/{session.public_id}/").content.decode()
    assert 'data-confirm="Delete “Support line”?' in page
    response = owner.post(f"/dashboard/sessions/{session.public_id}/delete")
    assert response["Location"] == "/dashboard/sessions/"
    session.refresh_from_db()
    assert session.deleted_at is not None
    listing = owner.get("/dashboard/sessions/").content.decode()
    assert "Session “Support line” deleted." in listing
    assert str(session.public_id) not in listing
    assert owner.get(f"/dashboard/sessions/{session.public_id}/").status_code == 404


ACTIONS = ["connect", "scan", "disconnect", "logout", "delete"]


@pytest.mark.parametrize("action", ACTIONS)
def test_members_read_sessions_but_cannot_act_on_them(
    member: Client, tenant: Tenant, action: str
) -> None:
    session = connecting_session(tenant)
    page = member.get(f"/dashboard/sessions/{session.public_id}/").content.decode()
    assert 'id="qr-image"' in page
    assert "simulate-scan" not in page and "Disconnect" not in page
    assert (
        member.post(f"/dashboard/sessions/{session.public_id}/{action}").status_code
        == 403
    )
    session.refresh_from_db()
    assert session.connection_state == ConnectionState.CONNECTING


def test_members_cannot_create_sessions_or_get_pairing_codes(
    member: Client, tenant: Tenant
) -> None:
    assert "New session" not in member.get("/dashboard/sessions/").content.decode()
    assert member.post("/dashboard/sessions/", {"display_name": "x"}).status_code == 403
    session = connecting_session(tenant)
    response = member.post(
        f"/dashboard/sessions/{session.public_id}/pairing-code",
        {"phone_number": "15551230000"},
    )
    assert response.status_code == 403
    assert Session.objects.count() == 1


def test_admins_manage_sessions(as_role: Callable[..., Client], tenant: Tenant) -> None:
    admin = as_role("admin")
    session = connecting_session(tenant)
    admin.post(f"/dashboard/sessions/{session.public_id}/scan")
    session.refresh_from_db()
    assert session.paired


@pytest.mark.parametrize("action", ["", "panel", *ACTIONS])
def test_an_outsiders_session_is_not_found(
    owner: Client, outsider: Tenant, action: str
) -> None:
    theirs = connecting_session(outsider)
    url = f"/dashboard/sessions/{theirs.public_id}/{action}"
    response = owner.post(url) if action in ACTIONS else owner.get(url)
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.connection_state == ConnectionState.CONNECTING


@pytest.mark.parametrize("action", ["", "panel", *ACTIONS])
def test_the_other_environments_session_is_not_found(
    owner: Client, tenant: Tenant, action: str
) -> None:
    live = connecting_session(tenant, "live")
    url = f"/dashboard/sessions/{live.public_id}/{action}"
    response = owner.post(url) if action in ACTIONS else owner.get(url)
    assert response.status_code == 404
    live.refresh_from_db()
    assert live.connection_state == ConnectionState.CONNECTING and not live.paired


def test_a_malformed_session_id_is_not_found(owner: Client) -> None:
    assert owner.get("/dashboard/sessions/not-a-uuid/").status_code == 404
