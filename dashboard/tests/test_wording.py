"""The dashboard reads as words: phone numbers as people write them, states and end
reasons in plain English, the same in the server's pages and in the rows the page's
script writes from live events; and it has an icon."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.template import Context, Template
from django.test import Client

from calls import services as call_services
from calls.models import CallState, Direction, EndReason
from conftest import Tenant
from dashboard.templatetags.wording import (
    END_REASON_WORDS,
    STATE_WORDS,
    phone_number,
)
from dashboard.tests.conftest import PASSWORD, Tab, make_user, paired_session, wait_js
from dashboard.tests.test_browser import log_in

ADDRESSES = [
    ("15550000006@s.whatsapp.net", "+1 555 000 0006"),
    ("15550000006:12@s.whatsapp.net", "+1 555 000 0006"),
    ("+15550000006", "+1 555 000 0006"),
    ("+1 (555) 000-0006", "+1 555 000 0006"),
    ("sip:+15550000006@trunk.example.com;user=phone", "+1 555 000 0006"),
    ("+442079460958", "+44 207 946 0958"),
    ("+4930123456", "+49 3012 3456"),
    ("+79123456789", "+7 912 345 6789"),
    ("+3545551234", "+354 555 1234"),
    ("+861012345678", "+86 101 234 5678"),
    ("sip:alice@example.com", "sip:alice@example.com"),
    ("sip:1001@pbx.example.com", "sip:1001@pbx.example.com"),
    ("123456789@lid", "123456789@lid"),
    ("15550000006", "15550000006"),
    ("+12345", "+12345"),
    ("+0123456789", "+0123456789"),
    ("", ""),
]


@pytest.mark.parametrize(("address", "shown"), ADDRESSES)
def test_addresses_read_as_phone_numbers_where_they_are_ones(
    address: str, shown: str
) -> None:
    assert phone_number(address) == shown


def shown(address: str) -> str:
    return Template("{% load dashboard_tags %}{{ address|phone }}").render(
        Context({"address": address})
    )


def test_the_stored_address_stays_in_the_title() -> None:
    assert shown("15550000006@s.whatsapp.net") == (
        '<span class="phone" title="15550000006@s.whatsapp.net">+1 555 000 0006</span>'
    )
    assert shown("sip:<b>@example.com") == "sip:&lt;b&gt;@example.com"
    assert shown("") == ""


def test_every_state_and_end_reason_has_words() -> None:
    assert set(STATE_WORDS) == set(CallState.values)
    assert set(END_REASON_WORDS) == set(EndReason.values)
    assert END_REASON_WORDS["remote_hangup"] == "The other side hung up"
    assert END_REASON_WORDS["client_gone"] == "Ended: no client listening"


@pytest.mark.django_db
def test_call_pages_show_numbers_and_words(owner: Client, tenant: Tenant) -> None:
    session = paired_session(tenant.test)
    call = call_services.call_create(
        session=session,
        peer_address="15550000006@s.whatsapp.net",
        direction=Direction.INCOMING,
        host="elsewhere",
    )
    call_services.call_transition(
        call_id=call.pk, to=CallState.ENDED, end_reason="remote_hangup"
    )
    shown = '<span class="phone" title="15550000006@s.whatsapp.net">+1 555 000 0006'
    detail = owner.get(
        f"/dashboard/calls/{session.public_id}/{call.public_id}/"
    ).content.decode()
    assert "<title>Call +1 555 000 0006 · Calls" in detail
    assert shown in detail
    assert '<dd data-testid="end-reason">The other side hung up</dd>' in detail
    assert 'data-testid="call-state">Ended</span>' in detail
    assert "+1 555 000 0006 ended (The other side hung up)" in detail  # timeline
    rows = owner.get("/dashboard/calls/rows").content.decode()
    assert shown in rows and "<td>The other side hung up</td>" in rows
    sessions = owner.get("/dashboard/sessions/").content.decode()
    assert f'title="{session.address}">{phone_number(session.address)}<' in sessions


@pytest.mark.django_db
def test_every_page_carries_the_words_for_its_script_and_an_icon(
    owner: Client,
) -> None:
    page = owner.get("/dashboard/").content.decode()
    words = re.search(r'data-call-words="([^"]+)"', page)
    assert words is not None
    assert json.loads(words[1].replace("&quot;", '"')) == {
        "states": STATE_WORDS,
        "endReasons": END_REASON_WORDS,
    }
    icon = '<link rel="icon" href="/static/dashboard/favicon.svg" type="image/svg+xml">'
    assert icon in page
    assert icon in Client().get("/dashboard/login/").content.decode()


# ---------------------------------------------------------------- in the browser


def format_in_the_page(page: Any, addresses: list[str]) -> list[str]:
    page.goto("/dashboard/")
    return list(
        page.evaluate(
            """async (addresses) => {
              const { formatPhone } = await import("/static/dashboard/js/wording.js");
              return addresses.map(formatPhone);
            }""",
            addresses,
        )
    )


def the_icon(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """async () => {
              const href = document.querySelector("link[rel=icon]").href;
              const response = await fetch(href);
              return {
                status: response.status,
                type: response.headers.get("content-type"),
                body: await response.text(),
              };
            }"""
        )
    )


def the_newest_event(page: Any) -> str:
    summary = "#recent-events .event.fresh .event-summary"
    wait_js(
        page,
        f"document.querySelector({summary!r})?.textContent.includes('ended')",
    )
    return str(page.locator(summary).first.inner_text())


def the_newest_event_after_a_reload(page: Any) -> str:
    page.reload()
    return str(page.locator("#recent-events .event-summary").first.inner_text())


@pytest.mark.browser
@pytest.mark.usefixtures("transactional_db")
def test_the_page_words_live_events_as_the_server_does(
    tab: Tab, tenant: Tenant
) -> None:
    owner = make_user("owner", tenant, "owner")
    session = paired_session(tenant.test)
    tab.do(log_in, owner.username, PASSWORD)
    addresses = [address for address, _ in ADDRESSES]
    assert tab.do(format_in_the_page, addresses) == [s for _, s in ADDRESSES]
    icon = tab.do(the_icon)
    assert icon["status"] == 200 and icon["type"].startswith("image/svg+xml")
    assert icon["body"].lstrip().startswith("<svg")

    call = call_services.call_create(
        session=session,
        peer_address="15550000006@s.whatsapp.net",
        direction=Direction.OUTGOING,
        host="elsewhere",
    )
    call_services.call_transition(
        call_id=call.pk, to=CallState.ENDED, end_reason="no_answer"
    )
    live = tab.do(the_newest_event)
    assert live == "+1 555 000 0006 ended (No answer)"
    assert tab.do(the_newest_event_after_a_reload) == live
