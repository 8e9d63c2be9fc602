"""WhatsApp sessions in the dashboard: the carrier choice, the settings and their
refusals, the write-only access token and app secret, editing, the line's state, and
what Meta is given (the webhook URL and verify token, with copy buttons)."""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from calls import lines
from calls import services as call_services
from calls.credentials import unseal
from calls.models import ConnectionState, Session
from conftest import LiveServer, Tenant
from dashboard.tests.conftest import Tab, browser_for, make_user
from events.models import Event

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://switchboard.example.com"
DEFAULT_GRAPH = "https://graph.facebook.com/v23.0"
PHONE_NUMBER_ID = "106540352242922"
ACCESS_TOKEN = "EAAGm0PX4ZCpsBAtok3n-51c3a9"
NEW_ACCESS_TOKEN = "EAAGm0PX4ZCpsBAnew0k-e7d2"
APP_SECRET = "3f9a1c0e7b2d4a6f8e0c1b2a3d4e5f60"
SECRETS = (ACCESS_TOKEN, NEW_ACCESS_TOKEN, APP_SECRET)


@pytest.fixture(autouse=True)
def whatsapp_enabled(settings: Any) -> None:
    settings.SWITCHBOARD_CARRIERS = ["simulator", "whatsapp"]
    settings.SWITCHBOARD_PUBLIC_URL = PUBLIC_URL
    settings.WHATSAPP_GRAPH_API_BASE = DEFAULT_GRAPH
    # Production's rule resolves the Graph API's host, and tests run offline.
    settings.WHATSAPP_ALLOW_PRIVATE_GRAPH = True


@pytest.fixture
def live_owner(as_role: Callable[..., Client], tenant: Tenant) -> Client:
    return as_role("owner", tenant.live)


@pytest.fixture
def live_member(as_role: Callable[..., Client], tenant: Tenant) -> Client:
    return as_role("member", tenant.live)


def create_form(**fields: str) -> dict[str, str]:
    """What the new-session form posts for a WhatsApp number; ``whatsapp_app_secret=…``
    overrides a field."""
    data = {
        "display_name": "WhatsApp line",
        "carrier": "whatsapp",
        "whatsapp-phone_number_id": PHONE_NUMBER_ID,
        "whatsapp-access_token": ACCESS_TOKEN,
        "whatsapp-app_secret": APP_SECRET,
        "whatsapp-graph_api_base": "",
    }
    data.update(
        {
            name.replace("whatsapp_", "whatsapp-", 1): value
            for name, value in fields.items()
        }
    )
    return data


def edit_form(session: Session, **fields: str) -> dict[str, str]:
    """The edit form as the page fills it in (both secrets blank)."""
    data = {
        "whatsapp-phone_number_id": session.carrier_settings["phone_number_id"],
        "whatsapp-access_token": "",
        "whatsapp-app_secret": "",
        "whatsapp-graph_api_base": "",
    }
    data.update(
        {
            name.replace("whatsapp_", "whatsapp-", 1): value
            for name, value in fields.items()
        }
    )
    return data


def whatsapp_session(tenant: Tenant, **settings: Any) -> Session:
    return call_services.session_create(
        environment=tenant.live,
        display_name="WhatsApp line",
        carrier="whatsapp",
        carrier_settings={
            "phone_number_id": PHONE_NUMBER_ID,
            "access_token": ACCESS_TOKEN,
            "app_secret": APP_SECRET,
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


def settings_url(session: Session) -> str:
    return f"/dashboard/sessions/{session.public_id}/settings"


def assert_no_secret(html: str, where: str = "") -> None:
    for secret in SECRETS:
        assert secret not in html, where


def test_a_live_environment_with_whatsapp_offers_it_with_its_fields(
    live_owner: Client,
) -> None:
    page = live_owner.get("/dashboard/sessions/").content.decode()
    assert 'type="radio" name="carrier" value="simulator"' in page
    assert 'value="whatsapp"' in page and "WhatsApp Business" in page
    assert 'data-testid="whatsapp-fields"' in page
    assert 'type="password" name="whatsapp-access_token"' in page
    assert 'type="password" name="whatsapp-app_secret"' in page
    assert re.search(
        r'name="whatsapp-access_token"[^>]*autocomplete="new-password"', page
    )
    graph = re.search(r'<input[^>]*name="whatsapp-graph_api_base"[^>]*>', page)
    assert graph is not None and f'placeholder="{DEFAULT_GRAPH}"' in graph.group(0)
    # SIP is not enabled here, so it is not offered.
    assert 'value="sip"' not in page and "sip-fields" not in page


def test_the_test_environment_offers_no_whatsapp_choice(
    owner: Client, tenant: Tenant
) -> None:
    page = owner.get("/dashboard/sessions/").content.decode()
    assert 'name="carrier"' not in page and "whatsapp-fields" not in page
    assert "WhatsApp Business" not in page
    response = owner.post("/dashboard/sessions/", create_form())
    assert response.status_code == 302
    session = Session.objects.get(environment=tenant.test)
    assert session.carrier == "simulator" and session.credentials == ""


def test_an_owner_creates_a_whatsapp_session_with_its_secrets_encrypted(
    live_owner: Client, tenant: Tenant
) -> None:
    response = live_owner.post("/dashboard/sessions/", create_form())
    session = Session.objects.get(environment=tenant.live)
    assert response["Location"] == f"/dashboard/sessions/{session.public_id}/"
    assert session.carrier == "whatsapp"
    verify_token = session.carrier_settings["verify_token"]
    assert len(verify_token) >= 24
    assert session.carrier_settings == {
        "phone_number_id": PHONE_NUMBER_ID,
        "graph_api_base": DEFAULT_GRAPH,
        "verify_token": verify_token,
    }
    assert unseal(session.credentials) == {
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
    }
    assert_no_secret(session.credentials)
    assert Event.objects.filter(type="session.created").count() == 1


def test_the_secrets_never_appear_in_a_page(live_owner: Client, tenant: Tenant) -> None:
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
        assert_no_secret(html, name)
    assert "Session “WhatsApp line” created." in pages["after creating"]
    page = pages["detail"]
    assert 'data-testid="whatsapp-access-token"><span class="mono">••••c3a9<' in page
    assert 'data-testid="whatsapp-app-secret">set<' in page
    # The edit form's secret fields are empty, never filled in.
    for name in ("access_token", "app_secret"):
        field = re.search(rf'<input[^>]*name="whatsapp-{name}"[^>]*>', page)
        assert field is not None and "value=" not in field.group(0)


def test_the_detail_page_gives_the_webhook_url_and_verify_token_to_copy(
    live_owner: Client, tenant: Tenant
) -> None:
    session = whatsapp_session(tenant)
    page = detail(live_owner, session)
    webhook_url = f"{PUBLIC_URL}/carriers/whatsapp/{session.public_id}/webhook"
    verify_token = session.carrier_settings["verify_token"]
    assert "Connect Meta to this line" in page
    assert re.search(
        rf'<input type="text" readonly[^>]*id="whatsapp-webhook-url" '
        rf'value="{re.escape(webhook_url)}"',
        page,
    )
    assert re.search(
        rf'id="whatsapp-verify-token" value="{re.escape(verify_token)}"', page
    )
    for field in ("whatsapp-webhook-url", "whatsapp-verify-token"):
        assert re.search(
            rf'<button type="button"[^>]*data-copy="#{field}"[^>]*>Copy<', page
        )
    text = html_module.unescape(re.sub(r"<[^>]+>", "", page))
    assert "WhatsApp → Configuration" in text
    assert "subscribe to the calls webhook field" in text
    # The copy script is the dashboard's own, not a CDN's.
    assert re.search(r'<script type="module" src="/static/dashboard/js/[\w.-]+"', page)
    assert "cdn" not in page.lower()


def test_the_detail_page_shows_the_settings_an_edit_form_and_the_line_state(
    live_owner: Client, tenant: Tenant
) -> None:
    session = whatsapp_session(tenant)
    page = detail(live_owner, session)
    assert f'data-testid="whatsapp-phone-number-id">{PHONE_NUMBER_ID}<' in page
    assert f'data-testid="whatsapp-graph-api-base">{DEFAULT_GRAPH}<' in page
    assert f'action="{settings_url(session)}"' in page
    assert f'name="whatsapp-phone_number_id" value="{PHONE_NUMBER_ID}"' in page
    # The default Graph API base is shown as the placeholder, the field left blank.
    field = re.search(r'<input[^>]*name="whatsapp-graph_api_base"[^>]*>', page)
    assert field is not None and "value=" not in field.group(0)
    assert page.count("Leave blank to keep the stored one.") == 2
    assert_no_secret(page)
    assert 'data-testid="line-status">Not connected yet<' in page
    assert ">Connect</button>" in page
    assert "Connect and pair" not in page and "pairing-code" not in page


def test_the_panel_tells_connecting_then_connected(
    live_owner: Client, tenant: Tenant
) -> None:
    session = call_services.session_connect(session=whatsapp_session(tenant))
    panel_url = f"/dashboard/sessions/{session.public_id}/panel"
    panel = live_owner.get(panel_url).content.decode()
    assert 'data-testid="line-status">Connecting…<' in panel
    assert 'data-testid="connection-state">connecting<' in panel
    lines.line_connected(str(session.public_id))
    panel = live_owner.get(panel_url).content.decode()
    assert 'data-testid="line-status">Connected<' in panel
    assert "Place a call" in panel


def test_a_line_in_error_shows_the_code_and_message(
    live_owner: Client, tenant: Tenant
) -> None:
    session = whatsapp_session(tenant)
    Session.objects.filter(pk=session.pk).update(
        active=True,
        connection_state=ConnectionState.ERROR,
        last_error={
            "code": "190",
            "message": "Invalid OAuth access token",
            "at": timezone.now().isoformat(),
        },
    )
    page = detail(live_owner, session)
    assert (
        'data-testid="line-status">Connection failed: 190 Invalid OAuth access token<'
        in page
    )
    assert 'data-testid="last-error">190: Invalid OAuth access token' in page
    assert 'data-testid="connection-state">error<' in page
    assert "To retry, save the settings, or disconnect" in page


@pytest.mark.parametrize(
    ("fields", "on", "message"),
    [
        (
            {"whatsapp_phone_number_id": "+1 555 123 0000"},
            "phone_number_id",
            "Give the phone number ID from the WhatsApp Manager",
        ),
        (
            {"whatsapp_phone_number_id": ""},
            "phone_number_id",
            "Give the phone number ID from the WhatsApp Manager",
        ),
        (
            {"whatsapp_access_token": ""},
            "access_token",
            "A WhatsApp session needs its access token.",
        ),
        (
            {"whatsapp_app_secret": ""},
            "app_secret",
            "A WhatsApp session needs its app secret.",
        ),
        (
            {"whatsapp_access_token": "EAAG token with spaces"},
            "access_token",
            "accessToken has characters a token never has.",
        ),
        (
            {"whatsapp_graph_api_base": "https://graph.facebook.com/v23.0?x=1"},
            "graph_api_base",
            "graphApiBase is a base URL, without query or fragment.",
        ),
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
    assert message in html_module.unescape(errors[on])
    assert not Session.objects.exists()
    assert_no_secret(html)
    # A secret that was typed must be typed again; what else was typed stays.
    if on != "access_token":
        assert "Type it again: a secret is never shown back." in html
    if on != "phone_number_id":
        assert f'name="whatsapp-phone_number_id" value="{PHONE_NUMBER_ID}"' in html


def test_production_refuses_an_http_graph_api_base_on_its_field(
    live_owner: Client, settings: Any
) -> None:
    settings.WHATSAPP_ALLOW_PRIVATE_GRAPH = False
    response = live_owner.post(
        "/dashboard/sessions/",
        create_form(whatsapp_graph_api_base="http://127.0.0.1:9999/v23.0"),
    )
    assert response.status_code == 400
    errors = field_errors(response.content.decode())
    assert list(errors) == ["graph_api_base"]
    assert "graphApiBase: The URL must start with https://." in errors["graph_api_base"]
    assert not Session.objects.exists()


def test_an_http_graph_api_base_is_accepted_where_private_graphs_are_allowed(
    live_owner: Client, tenant: Tenant
) -> None:
    base = "http://127.0.0.1:9999/v23.0"
    response = live_owner.post(
        "/dashboard/sessions/", create_form(whatsapp_graph_api_base=base + "/")
    )
    assert response.status_code == 302
    session = Session.objects.get(environment=tenant.live)
    assert session.carrier_settings["graph_api_base"] == base
    page = detail(live_owner, session)
    assert f'name="whatsapp-graph_api_base" value="{base}"' in page
    # Cleared, the Graph API base is the default again.
    live_owner.post(settings_url(session), edit_form(session))
    session.refresh_from_db()
    assert session.carrier_settings["graph_api_base"] == DEFAULT_GRAPH


def test_saving_with_blank_secrets_keeps_them(
    live_owner: Client, tenant: Tenant
) -> None:
    session = whatsapp_session(tenant)
    verify_token = session.carrier_settings["verify_token"]
    response = live_owner.post(
        settings_url(session),
        edit_form(session, whatsapp_phone_number_id="209876543210987"),
        follow=True,
    )
    session.refresh_from_db()
    assert session.carrier_settings["phone_number_id"] == "209876543210987"
    # Meta was given the verify token: saving never changes it.
    assert session.carrier_settings["verify_token"] == verify_token
    assert unseal(session.credentials) == {
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
    }
    html = response.content.decode()
    assert "WhatsApp settings saved." in html
    assert_no_secret(html)


def test_saving_with_a_new_access_token_replaces_it(
    live_owner: Client, tenant: Tenant
) -> None:
    session = whatsapp_session(tenant)
    response = live_owner.post(
        settings_url(session),
        edit_form(session, whatsapp_access_token=NEW_ACCESS_TOKEN),
        follow=True,
    )
    session.refresh_from_db()
    assert unseal(session.credentials) == {
        "access_token": NEW_ACCESS_TOKEN,
        "app_secret": APP_SECRET,
    }
    html = response.content.decode()
    assert_no_secret(html)
    assert 'data-testid="whatsapp-access-token"><span class="mono">••••e7d2<' in html


def test_new_settings_bring_a_connected_line_up_again(
    live_owner: Client, tenant: Tenant
) -> None:
    session = call_services.session_connect(session=whatsapp_session(tenant))
    lines.line_connected(str(session.public_id))
    session.refresh_from_db()
    generation = session.line_state.get("generation", 0)
    response = live_owner.post(
        settings_url(session),
        edit_form(session, whatsapp_access_token=NEW_ACCESS_TOKEN),
        follow=True,
    )
    session.refresh_from_db()
    assert session.connection_state == ConnectionState.CONNECTING
    assert session.line_state["generation"] == generation + 1
    html = response.content.decode()
    assert "WhatsApp settings saved. The line comes back up with them." in html
    assert 'data-testid="line-status">Connecting…<' in html


@pytest.mark.parametrize(
    ("fields", "on"),
    [
        ({"whatsapp_phone_number_id": "12ab"}, "phone_number_id"),
        ({"whatsapp_app_secret": "not a secret"}, "app_secret"),
    ],
)
def test_a_refused_edit_is_shown_on_its_field_and_changes_nothing(
    live_owner: Client, tenant: Tenant, fields: dict[str, str], on: str
) -> None:
    session = whatsapp_session(tenant)
    before = (session.carrier_settings, session.credentials)
    response = live_owner.post(
        settings_url(session),
        edit_form(session, whatsapp_access_token=NEW_ACCESS_TOKEN, **fields),
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert list(field_errors(html)) == [on]
    assert '<details class="edit-settings" open>' in html
    assert "Type it again: a secret is never shown back." in html
    assert_no_secret(html)
    session.refresh_from_db()
    assert (session.carrier_settings, session.credentials) == before


def test_members_read_the_settings_but_cannot_create_or_edit(
    live_member: Client, tenant: Tenant
) -> None:
    page = live_member.get("/dashboard/sessions/").content.decode()
    assert "New session" not in page and "whatsapp-fields" not in page
    response = live_member.post("/dashboard/sessions/", create_form())
    assert response.status_code == 403
    session = whatsapp_session(tenant)
    page = detail(live_member, session)
    assert f'data-testid="whatsapp-phone-number-id">{PHONE_NUMBER_ID}<' in page
    assert f'data-testid="whatsapp-graph-api-base">{DEFAULT_GRAPH}<' in page
    assert 'data-testid="whatsapp-access-token"><span class="mono">••••c3a9<' in page
    assert 'data-testid="whatsapp-app-secret">set<' in page
    assert "Edit settings" not in page and 'name="whatsapp-' not in page
    assert_no_secret(page)
    response = live_member.post(
        settings_url(session),
        edit_form(session, whatsapp_access_token=NEW_ACCESS_TOKEN),
    )
    assert response.status_code == 403
    session.refresh_from_db()
    assert unseal(session.credentials)["access_token"] == ACCESS_TOKEN
    assert Session.objects.filter(environment=tenant.live).count() == 1


def test_another_accounts_whatsapp_session_is_not_found(
    live_owner: Client, outsider: Tenant
) -> None:
    theirs = whatsapp_session(outsider)
    assert live_owner.get(f"/dashboard/sessions/{theirs.public_id}/").status_code == (
        404
    )
    response = live_owner.post(
        settings_url(theirs),
        edit_form(theirs, whatsapp_access_token=NEW_ACCESS_TOKEN),
    )
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert unseal(theirs.credentials)["access_token"] == ACCESS_TOKEN


# ---------------------------------------------------------------- in a real browser


def copy_the_webhook_url(page: Any, path: str) -> dict[str, str]:
    page.goto(path)
    page.click("[data-testid=copy-webhook-url]")
    page.wait_for_selector("[data-testid=copy-webhook-url]:text('Copied')")
    return {
        "field": page.locator("[data-testid=webhook-url]").input_value(),
        "clipboard": page.evaluate("navigator.clipboard.readText()"),
    }


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_copy_button_puts_the_webhook_url_on_the_clipboard(
    tab: Tab, asgi_server: LiveServer, tenant: Tenant
) -> None:
    session = whatsapp_session(tenant)
    # Logged in as an owner looking at the live environment, as the test client is.
    client = browser_for(make_user("meta-admin", tenant, "owner"), tenant.live)
    name = django_settings.SESSION_COOKIE_NAME
    cookie = {"name": name, "value": client.cookies[name].value}
    tab.do(lambda page: page.context.add_cookies([{**cookie, "url": asgi_server.url}]))
    copied = tab.do(copy_the_webhook_url, f"/dashboard/sessions/{session.public_id}/")
    webhook_url = f"{PUBLIC_URL}/carriers/whatsapp/{session.public_id}/webhook"
    assert copied == {"field": webhook_url, "clipboard": webhook_url}
