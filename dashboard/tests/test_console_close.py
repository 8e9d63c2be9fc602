"""A console that is closed, or left for another page, hangs up the call it placed.

The page sends a beacon (``POST /dashboard/console/hang-up``, its CSRF token in the body)
as it goes; the endpoint ends only calls of the environment the login is looking at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from calls import services as call_services
from calls.models import Call, CallState, Direction, Session
from calls.runtime import control
from calls.tests.conftest import wait_for
from conftest import Tenant
from dashboard.tests.conftest import (
    PASSWORD,
    Tab,
    browser_for,
    make_user,
    paired_session,
    wait_js,
)
from dashboard.tests.test_browser import log_in

HANG_UP = "/dashboard/console/hang-up"
ECHO = "15550000001@s.whatsapp.net"
# The echo peer stays on the line until someone hangs up; the server would only end an
# abandoned call `client_gone` after a minute, so an end within this is the page's doing.
ENDS_WITHIN_S = 15


def a_call(session: Session) -> Call:
    """A live call row hosted elsewhere: enough for requests refused before ending."""
    return call_services.call_create(
        session=session, peer_address=ECHO, direction=Direction.OUTGOING, host="x"
    )


def csrf_client(user: Any) -> tuple[Client, str]:
    """A login that enforces CSRF, and the token its console page carries."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/dashboard/console/").content.decode()
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token is not None
    return client, token[1]


def beacon(call: Call, token: str = "") -> dict[str, str]:
    body = {"session": str(call.session.public_id), "call": str(call.public_id)}
    return {**body, "csrfmiddlewaretoken": token} if token else body


def ended(call: Call) -> Call | None:
    fresh = Call.objects.get(pk=call.pk)
    return fresh if fresh.state == CallState.ENDED else None


# ---------------------------------------------------------------- the endpoint


def test_the_beacon_ends_the_call_with_its_token_in_the_body(
    tenant: Tenant, engine: Any, fast_network: Any
) -> None:
    client, token = csrf_client(make_user("owner", tenant, "owner"))
    call = control.call_place(
        session=paired_session(tenant.test), to=ECHO, record=False
    ).call
    wait_for(lambda: Call.objects.get(pk=call.pk).state == CallState.ACTIVE)
    # A beacon's body is multipart form data; it can set no header.
    response = client.post(HANG_UP, beacon(call, token))
    assert response.status_code == 204
    assert wait_for(lambda: ended(call)).end_reason == "completed"
    # Nothing is left to show on the next page the login opens.
    assert 'class="messages"' not in client.get("/dashboard/calls/").content.decode()
    assert client.post(HANG_UP, beacon(call, token)).status_code == 204


@pytest.mark.django_db
def test_a_beacon_without_the_csrf_token_is_refused(tenant: Tenant) -> None:
    client, _ = csrf_client(make_user("owner", tenant, "owner"))
    call = a_call(paired_session(tenant.test))
    assert client.post(HANG_UP, beacon(call)).status_code == 403
    assert Call.objects.get(pk=call.pk).state == CallState.INITIATING


@pytest.mark.django_db
@pytest.mark.parametrize("whose", ["outsider", "live environment"])
def test_another_accounts_or_environments_call_is_not_found(
    tenant: Tenant, outsider: Tenant, whose: str
) -> None:
    client, token = csrf_client(make_user("owner", tenant, "owner"))
    environment = outsider.test if whose == "outsider" else tenant.live
    theirs = a_call(paired_session(environment))
    assert client.post(HANG_UP, beacon(theirs, token)).status_code == 404
    assert Call.objects.get(pk=theirs.pk).state == CallState.INITIATING


@pytest.mark.django_db
def test_members_cannot_hang_up(as_role: Callable[..., Client], tenant: Tenant) -> None:
    call = a_call(paired_session(tenant.test))
    response = as_role("member").post(HANG_UP, beacon(call))
    assert response.status_code == 403
    assert Call.objects.get(pk=call.pk).state == CallState.INITIATING


@pytest.mark.django_db
def test_an_ended_call_stays_as_it_ended(tenant: Tenant) -> None:
    call = a_call(paired_session(tenant.test))
    call_services.call_transition(
        call_id=call.pk, to=CallState.ENDED, end_reason="busy"
    )
    owner = browser_for(make_user("owner", tenant, "owner"))
    assert owner.post(HANG_UP, beacon(call)).status_code == 204
    assert Call.objects.get(pk=call.pk).end_reason == "busy"


# ---------------------------------------------------------------- in the browser


def place_a_call_to_the_echo_peer(page: Any, session_id: str) -> str:
    page.goto(f"/dashboard/console/?line={session_id}")
    page.uncheck("#console-aec")  # the fake microphone is a file: no echo to cancel
    page.uncheck("#console-record")
    page.click("#console-start")
    wait_js(page, "window.__sbConsole.state === 'active'")
    return str(page.evaluate("window.__sbConsole.callId"))


def close_the_tab(page: Any) -> None:
    """Close it as a person does: the page's unload handlers run."""
    with page.expect_event("close"):
        page.close(run_before_unload=True)


def go_to_the_calls_page(page: Any, call_id: str) -> str:
    page.click("nav >> text=Calls")
    page.wait_for_url("**/dashboard/calls/")
    state = f"tr[data-call-id='{call_id}'] [data-testid=call-state]"
    # Ended by the beacon, shown at once or brought by the event stream.
    page.wait_for_selector(f"{state}:text('Ended')", timeout=ENDS_WITHIN_S * 1000)
    return str(page.locator(f"tr[data-call-id='{call_id}']").inner_text())


@pytest.mark.browser
@pytest.mark.usefixtures("engine", "fast_network", "tasks_in_process")
def test_closing_the_console_hangs_up_its_call(tab: Tab, tenant: Tenant) -> None:
    owner = make_user("owner", tenant, "owner")
    session = paired_session(tenant.test)
    tab.do(log_in, owner.username, PASSWORD)
    call_id = tab.do(place_a_call_to_the_echo_peer, str(session.public_id))
    call = Call.objects.get(public_id=call_id)
    assert call.state == CallState.ACTIVE

    tab.do(close_the_tab)
    assert wait_for(lambda: ended(call), timeout=ENDS_WITHIN_S).end_reason == (
        "completed"
    )


@pytest.mark.browser
@pytest.mark.usefixtures("engine", "fast_network", "tasks_in_process")
def test_leaving_the_console_for_another_page_hangs_up_its_call(
    tab: Tab, tenant: Tenant
) -> None:
    owner = make_user("owner", tenant, "owner")
    session = paired_session(tenant.test)
    tab.do(log_in, owner.username, PASSWORD)
    call_id = tab.do(place_a_call_to_the_echo_peer, str(session.public_id))

    row = tab.do(go_to_the_calls_page, call_id)
    assert "+1 555 000 0001" in row and "Hung up on this side" in row
    assert wait_for(lambda: ended(Call.objects.get(public_id=call_id))).end_reason == (
        "completed"
    )
