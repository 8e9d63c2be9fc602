"""A live call's page says whether a client media socket or a dial-out stream is attached
now, and follows the call's events without a reload."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from calls import services as call_services
from calls.models import Call, CallState, Direction
from conftest import Tenant
from dashboard.tests.conftest import PASSWORD, Tab, make_user, paired_session, wait_js
from dashboard.tests.test_browser import log_in


def an_active_call(tenant: Tenant) -> Call:
    """A call row (no runtime) that rang and was answered."""
    call = call_services.call_create(
        session=paired_session(tenant.test),
        peer_address="15550000777@s.whatsapp.net",
        direction=Direction.OUTGOING,
        host="elsewhere",
    )
    for state in (CallState.RINGING, CallState.ACTIVE):
        moved = call_services.call_transition(call_id=call.pk, to=state)
        assert moved is not None
        call = moved
    return call


def page_url(call: Call) -> str:
    return f"/dashboard/calls/{call.session.public_id}/{call.public_id}/"


def attached(page: str) -> list[str]:
    return re.findall(r'data-testid="call-transport"[^>]*>([^<]*)<', page)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("transport", "shown"),
    [
        ("websocket", "Client socket attached"),
        ("stream", "Dial-out stream attached"),
        ("", "No client attached"),
    ],
)
def test_a_live_calls_page_says_what_is_attached(
    member: Client, tenant: Tenant, transport: str, shown: str
) -> None:
    call = an_active_call(tenant)
    call_services.call_set_transport(call_id=call.pk, transport=transport)
    assert attached(member.get(page_url(call)).content.decode()) == [shown]


@pytest.mark.django_db
def test_an_ended_calls_page_says_nothing_of_clients(
    member: Client, tenant: Tenant
) -> None:
    call = an_active_call(tenant)
    call_services.call_set_transport(call_id=call.pk, transport="websocket")
    call_services.call_transition(call_id=call.pk, to=CallState.ENDED)
    assert attached(member.get(page_url(call)).content.decode()) == []


# ---------------------------------------------------------------- in the browser


def open_the_call(page: Any, url: str) -> str:
    page.goto(url)
    wait_js(page, "window.__sbLive && window.__sbLive.connected")
    return page.locator("[data-testid=call-transport]").inner_text()


def wait_for_attached(page: Any, text: str) -> str:
    page.wait_for_selector(f"[data-testid=call-transport]:text-is('{text}')")
    return page.url


@pytest.mark.browser
@pytest.mark.usefixtures("transactional_db")
def test_the_attached_client_follows_the_calls_events_without_a_reload(
    tab: Tab, tenant: Tenant
) -> None:
    owner = make_user("clients-owner", tenant, "owner")
    call = an_active_call(tenant)
    tab.do(log_in, owner.username, PASSWORD)
    url = page_url(call)
    assert tab.do(open_the_call, url) == "No client attached"

    # Each change is told by the call's next event (here: mute and unmute).
    steps = [
        ("websocket", True, "Client socket attached"),
        ("stream", False, "Dial-out stream attached"),
        ("", True, "No client attached"),
    ]
    for transport, muted, shown in steps:
        call_services.call_set_transport(call_id=call.pk, transport=transport)
        call_services.call_set_muted(call_id=call.pk, muted=muted)
        assert tab.do(wait_for_attached, shown).endswith(url)  # the same page
