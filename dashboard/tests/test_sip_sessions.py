"""SIP sessions in the dashboard: the carrier choice, the SIP fields and their refusals,
the write-only password, editing the settings, and the registration state."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from calls import lines
from calls import services as call_services
from calls.credentials import unseal
from calls.models import ConnectionState, Session
from conftest import Tenant
from events.models import Event

pytestmark = pytest.mark.django_db

PASSWORD = "trunk-pw-7c41e9"
NEW_PASSWORD = "trunk-pw-b802d3"


@pytest.fixture(autouse=True)
def sip_enabled(settings: Any) -> None:
    settings.SWITCHBOARD_CARRIERS = ["simulator", "sip"]


@pytest.fixture
def live_owner(as_role: Callable[..., Client], tenant: Tenant) -> Client:
    return as_role("owner", tenant.live)


@pytest.fixture
def live_member(as_role: Callable[..., Client], tenant: Tenant) -> Client:
    return as_role("member", tenant.live)


def create_form(**fields: str) -> dict[str, str]:
    """What the new-session form posts for a SIP trunk; ``sip_server="…"`` overrides."""
    data = {
        "display_name": "Trunk",
        "carrier": "sip",
        "sip-server": "sip.example.com:5060",
        "sip-transport": "tls",
        "sip-username": "alice",
        "sip-password": PASSWORD,
        "sip-auth_username": "",
        "sip-from_number": "+1 555 123 0000",
        "sip-codecs": "g722, pcmu",
        "sip-register": "on",
    }
    data.update(
        {name.replace("sip_", "sip-", 1): value for name, value in fields.items()}
    )
    return {name: value for name, value in data.items() if value is not None}


def edit_form(session: Session, **fields: str) -> dict[str, str]:
    """The edit form as the page fills it in (the password field blank)."""
    shown = session.carrier_settings
    data = {
        "sip-server": shown["server"],
        "sip-transport": shown["transport"],
        "sip-username": shown["username"],
        "sip-password": "",
        "sip-auth_username": shown["auth_username"],
        "sip-from_number": shown["from_number"],
        "sip-codecs": ", ".join(shown["codecs"]),
        "sip-register": "on" if shown["register"] else "",
    }
    data.update(
        {name.replace("sip_", "sip-", 1): value for name, value in fields.items()}
    )
    return {name: value for name, value in data.items() if value}


def sip_session(tenant: Tenant, **settings: Any) -> Session:
    return call_services.session_create(
        environment=tenant.live,
        display_name="Trunk",
        carrier="sip",
        carrier_settings={
            "server": "sip.example.com",
            "username": "alice",
            "password": PASSWORD,
            **settings,
        },
    )


def field_errors(html: str) -> dict[str, str]:
    """The fields shown with an error, by name, with their text."""
    return dict(
        re.findall(r'<div class="field field-(\w+) has-error">(.*?)</div>', html, re.S)
    )


def detail(client: Client, session: Session) -> str:
    return client.get(f"/dashboard/sessions/{session.public_id}/").content.decode()


def test_a_live_environment_with_sip_offers_the_carrier_choice(
    live_owner: Client,
) -> None:
    page = live_owner.get("/dashboard/sessions/").content.decode()
    assert 'type="radio" name="carrier" value="simulator"' in page
    assert 'value="sip"' in page and "SIP trunk" in page
    assert 'data-testid="sip-fields"' in page
    assert 'type="password" name="sip-password"' in page
    assert re.search(r'name="sip-register"[^>]*checked', page)


def test_the_test_environment_offers_no_carrier_choice(
    owner: Client, tenant: Tenant
) -> None:
    page = owner.get("/dashboard/sessions/").content.decode()
    assert 'name="carrier"' not in page and "sip-fields" not in page
    response = owner.post("/dashboard/sessions/", create_form())
    assert response.status_code == 302
    session = Session.objects.get(environment=tenant.test)
    assert session.carrier == "simulator" and session.credentials == ""


def test_an_owner_creates_a_sip_session_with_its_password_encrypted(
    live_owner: Client, tenant: Tenant
) -> None:
    response = live_owner.post("/dashboard/sessions/", create_form())
    session = Session.objects.get(environment=tenant.live)
    assert response["Location"] == f"/dashboard/sessions/{session.public_id}/"
    assert session.carrier == "sip"
    assert session.carrier_settings == {
        "server": "sip.example.com:5060",
        "transport": "tls",
        "username": "alice",
        "auth_username": "",
        "from_number": "+15551230000",
        "register": True,
        "codecs": ["g722", "pcmu"],
    }
    assert unseal(session.credentials) == {"password": PASSWORD}
    assert PASSWORD not in session.credentials
    assert Event.objects.filter(type="session.created").count() == 1


def test_the_password_never_appears_in_a_page(
    live_owner: Client, tenant: Tenant
) -> None:
    created = live_owner.post("/dashboard/sessions/", create_form(), follow=True)
    session = Session.objects.get(environment=tenant.live)
    pages = {
        "after creating": created.content.decode(),
        "detail": detail(live_owner, session),
        "panel": live_owner.get(
            f"/dashboard/sessions/{session.public_id}/panel"
        ).content.decode(),
        "list": live_owner.get("/dashboard/sessions/").content.decode(),
        "rows": live_owner.get("/dashboard/sessions/rows").content.decode(),
    }
    for name, html in pages.items():
        assert PASSWORD not in html, name
    assert "Session “Trunk” created." in pages["after creating"]
    assert 'data-testid="sip-password">set<' in pages["detail"]


def test_choosing_the_simulator_ignores_the_sip_fields(
    live_owner: Client, tenant: Tenant
) -> None:
    response = live_owner.post(
        "/dashboard/sessions/",
        create_form(carrier="simulator", sip_server="", sip_username=""),
    )
    assert response.status_code == 302
    session = Session.objects.get(environment=tenant.live)
    assert session.carrier == "simulator" and session.credentials == ""


@pytest.mark.parametrize(
    ("fields", "on", "message"),
    [
        ({"sip_server": "not a host!"}, "server", "Give the trunk's SIP server"),
        ({"sip_server": "pbx.example.com:99999"}, "server", "port must be 1 to 65535"),
        ({"sip_from_number": "555-1234"}, "from_number", "fromNumber is an E.164"),
        ({"sip_auth_username": "bob smith"}, "auth_username", "characters SIP"),
        ({"sip_password": ""}, "password", "A registering trunk needs its password"),
        ({"sip_codecs": "pcmu, g729"}, "codecs", "“g729” is not a codec"),
        ({"sip_username": ""}, "username", "Give the SIP username"),
    ],
)
def test_a_refused_setting_is_shown_on_its_field_and_creates_nothing(
    live_owner: Client, fields: dict[str, str], on: str, message: str
) -> None:
    response = live_owner.post("/dashboard/sessions/", create_form(**fields))
    assert response.status_code == 400
    html = response.content.decode()
    errors = field_errors(html)
    assert list(errors) == [on]
    assert message in errors[on].replace("&#x27;", "'")
    assert not Session.objects.exists()
    assert PASSWORD not in html
    if on != "password":
        assert "Type it again: a password is never shown back." in html
    # What was typed stays, to be corrected.
    assert 'value="alice"' in html or on == "username"


def test_an_ip_authenticated_trunk_needs_no_password(
    live_owner: Client, tenant: Tenant
) -> None:
    response = live_owner.post(
        "/dashboard/sessions/", create_form(sip_password="", sip_register="")
    )
    assert response.status_code == 302
    session = Session.objects.get(environment=tenant.live)
    assert session.carrier_settings["register"] is False
    assert unseal(session.credentials) == {}
    page = detail(live_owner, session)
    assert 'data-testid="sip-password">not set<' in page
    assert "no (IP-authenticated trunk)" in page


def test_the_detail_page_shows_the_sip_settings_and_an_edit_form(
    live_owner: Client, tenant: Tenant
) -> None:
    session = sip_session(tenant, from_number="+15551230000", codecs=["opus", "pcma"])
    page = detail(live_owner, session)
    assert 'data-testid="sip-server">sip.example.com<' in page
    assert "+15551230000" in page and "opus, pcma" in page
    assert 'action="/dashboard/sessions/' + str(session.public_id) + '/settings"' in (
        page
    )
    assert 'name="sip-server" value="sip.example.com"' in page
    assert "Leave blank to keep the stored one." in page
    assert PASSWORD not in page
    # A line that does not pair has no QR, pairing code or log-out.
    assert "Connect and pair" not in page and "session-logout" not in page
    assert "pairing-code" not in page and ">Paired<" not in page
    assert 'data-testid="line-status">Not connected yet<' in page


def test_saving_with_a_blank_password_keeps_it(
    live_owner: Client, tenant: Tenant
) -> None:
    session = sip_session(tenant)
    response = live_owner.post(
        f"/dashboard/sessions/{session.public_id}/settings",
        edit_form(session, sip_server="pbx.example.org", sip_transport="tcp"),
        follow=True,
    )
    session.refresh_from_db()
    assert session.carrier_settings["server"] == "pbx.example.org"
    assert session.carrier_settings["transport"] == "tcp"
    assert unseal(session.credentials) == {"password": PASSWORD}
    html = response.content.decode()
    assert "SIP settings saved." in html and PASSWORD not in html


def test_saving_with_a_password_replaces_it(live_owner: Client, tenant: Tenant) -> None:
    session = sip_session(tenant)
    response = live_owner.post(
        f"/dashboard/sessions/{session.public_id}/settings",
        edit_form(session, sip_password=NEW_PASSWORD),
        follow=True,
    )
    session.refresh_from_db()
    assert unseal(session.credentials) == {"password": NEW_PASSWORD}
    html = response.content.decode()
    assert NEW_PASSWORD not in html and PASSWORD not in html


def test_new_settings_bring_a_connected_line_up_again(
    live_owner: Client, tenant: Tenant
) -> None:
    session = call_services.session_connect(session=sip_session(tenant))
    lines.line_connected(str(session.public_id))
    session.refresh_from_db()
    generation = session.line_state.get("generation", 0)
    response = live_owner.post(
        f"/dashboard/sessions/{session.public_id}/settings",
        edit_form(session, sip_username="bob"),
        follow=True,
    )
    session.refresh_from_db()
    assert session.connection_state == ConnectionState.CONNECTING
    assert session.line_state["generation"] == generation + 1
    html = response.content.decode()
    assert "The line comes back up with them." in html
    assert 'data-testid="line-status">Registering…<' in html


def test_a_refused_edit_is_shown_on_its_field_and_changes_nothing(
    live_owner: Client, tenant: Tenant
) -> None:
    session = sip_session(tenant)
    before = (session.carrier_settings, session.credentials)
    response = live_owner.post(
        f"/dashboard/sessions/{session.public_id}/settings",
        edit_form(session, sip_from_number="12345", sip_password=NEW_PASSWORD),
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert list(field_errors(html)) == ["from_number"]
    assert '<details class="edit-settings" open>' in html
    assert NEW_PASSWORD not in html and PASSWORD not in html
    session.refresh_from_db()
    assert (session.carrier_settings, session.credentials) == before


def test_members_read_sip_settings_but_cannot_create_or_edit(
    live_member: Client, tenant: Tenant
) -> None:
    assert "New session" not in live_member.get("/dashboard/sessions/").content.decode()
    assert live_member.post("/dashboard/sessions/", create_form()).status_code == 403
    session = sip_session(tenant)
    page = detail(live_member, session)
    assert 'data-testid="sip-server">sip.example.com<' in page
    assert "Edit settings" not in page and 'name="sip-server"' not in page
    response = live_member.post(
        f"/dashboard/sessions/{session.public_id}/settings",
        edit_form(session, sip_server="evil.example.com", sip_password=NEW_PASSWORD),
    )
    assert response.status_code == 403
    session.refresh_from_db()
    assert session.carrier_settings["server"] == "sip.example.com"
    assert unseal(session.credentials) == {"password": PASSWORD}
    assert Session.objects.filter(environment=tenant.live).count() == 1


def test_another_accounts_or_a_simulated_session_has_no_settings_to_edit(
    live_owner: Client, tenant: Tenant, outsider: Tenant
) -> None:
    theirs = sip_session(outsider)
    simulated = call_services.session_create(
        environment=tenant.live, display_name="Sim", carrier="simulator"
    )
    for session in (theirs, simulated):
        response = live_owner.post(
            f"/dashboard/sessions/{session.public_id}/settings",
            {
                "sip-server": "evil.example.com",
                "sip-username": "x",
                "sip-codecs": "pcmu",
            },
        )
        assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.carrier_settings["server"] == "sip.example.com"
    assert "SIP settings" not in detail(live_owner, simulated)


@pytest.mark.parametrize(
    ("register", "connected", "status"),
    [
        (True, False, "Registering…"),
        (True, True, "Registered"),
        (False, True, "Ready (IP-authenticated trunk)"),
    ],
)
def test_the_panel_tells_the_registration_state(
    live_owner: Client, tenant: Tenant, register: bool, connected: bool, status: str
) -> None:
    session = call_services.session_connect(
        session=sip_session(tenant, register=register)
    )
    if connected:
        lines.line_connected(str(session.public_id))
    panel = live_owner.get(f"/dashboard/sessions/{session.public_id}/panel")
    assert f'data-testid="line-status">{status}<' in panel.content.decode()


def test_a_refused_registration_shows_the_failure_and_its_error(
    live_owner: Client, tenant: Tenant
) -> None:
    session = call_services.session_connect(session=sip_session(tenant))
    lines.line_failed(str(session.public_id), "403", "REGISTER refused: Forbidden")
    page = detail(live_owner, session)
    assert (
        'data-testid="line-status">Registration failed: 403 REGISTER refused: '
        "Forbidden<" in page
    )
    assert 'data-testid="last-error">403: REGISTER refused: Forbidden' in page
    assert 'data-testid="connection-state">error<' in page
    # Connecting again would not retry the line: disconnecting or saving does.
    assert "/disconnect" in page and "/connect" not in page
    assert "To retry, save the settings, or disconnect" in page
