"""On a phone (390 × 844 in headless Chromium) every dashboard page fits the screen's
width, its navigation stays in view and works, and nothing breaks the page's CSP."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from assets import services as asset_services
from assets.models import AudioAsset
from calls import services as call_services
from calls.models import Call, CallState, Direction
from calls.tests.conftest import wait_for
from conftest import Tenant
from dashboard.tests.conftest import (
    PASSWORD,
    SPEECH_WAV,
    Tab,
    make_user,
    paired_session,
)
from dashboard.tests.test_browser import log_in
from events import services as event_services

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("transactional_db", "tasks_in_process"),
]

PHONE = {"width": 390, "height": 844}

# What sticks out past the screen's right edge (outside the boxes that scroll sideways
# on purpose), to say why a page is too wide.
MEASURE = """() => {
  const width = window.innerWidth;
  const sticking = [];
  for (const element of document.body.querySelectorAll("*")) {
    if (element.parentElement.closest(".table-scroll, .events")) continue;
    const box = element.getBoundingClientRect();
    if (box.width && box.right > width + 0.5) {
      const name = element.tagName.toLowerCase() + (element.id ? "#" + element.id : "")
        + (element.className && typeof element.className === "string"
          ? "." + element.className.trim().split(/\\s+/).join(".") : "");
      sticking.push(`${name} (right edge ${Math.round(box.right)})`);
    }
  }
  return {
    url: location.pathname,
    width,
    scrollWidth: document.documentElement.scrollWidth,
    sticking: sticking.slice(0, 8),
  };
}"""


def fits_the_screen(page: Any) -> dict[str, Any]:
    measured = page.evaluate(MEASURE)
    assert measured["width"] == PHONE["width"], measured
    assert measured["scrollWidth"] <= PHONE["width"], measured
    return measured


def nav_links_are_on_screen(page: Any) -> list[str]:
    """Every link of the main navigation is visible and inside the screen's width."""
    links = page.locator("nav.sidenav a")
    assert links.count() >= 8
    hrefs = []
    for index in range(links.count()):
        link = links.nth(index)
        assert link.is_visible(), link.inner_text()
        box = link.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (
            link.inner_text(),
            box,
        )
        hrefs.append(link.get_attribute("href"))
    return hrefs


def the_login_page_fits(page: Any) -> None:
    page.set_viewport_size(PHONE)
    page.goto("/dashboard/login/")
    fits_the_screen(page)


def every_section_fits(page: Any) -> list[str]:
    """Go through the sections by tapping their links in the navigation."""
    page.goto("/dashboard/")
    fits_the_screen(page)
    visited = []
    for href in nav_links_are_on_screen(page):
        page.click(f"nav.sidenav a[href='{href}']")
        page.wait_for_url(f"**{href}")
        page.wait_for_load_state()
        assert page.locator(f"nav.sidenav a[href='{href}'].current").count() == 1
        fits_the_screen(page)
        nav_links_are_on_screen(page)
        visited.append(href)
    return visited


def the_pages_fit(page: Any, paths: list[str]) -> None:
    for path in paths:
        page.goto(path)
        page.wait_for_load_state()
        fits_the_screen(page)
        nav_links_are_on_screen(page)


def a_call(session: Any, peer: str, *states: str, reason: str = "") -> Call:
    """A call row (no runtime) taken through ``states``: enough for pages that read."""
    call = call_services.call_create(
        session=session,
        peer_address=peer,
        direction=Direction.OUTGOING,
        host="elsewhere",
    )
    for state in states:
        moved = call_services.call_transition(
            call_id=call.pk, to=state, end_reason=reason
        )
        assert moved is not None, (call, state)
        call = moved
    return call


def test_every_dashboard_page_fits_a_phone_screen(tab: Tab, tenant: Tenant) -> None:
    owner = make_user("phone-owner", tenant, "owner")
    session = paired_session(tenant.test, "The support line with a long name")
    # Calls of every kind of address, live and ended, so the tables and facts are full.
    live = a_call(
        session, "15550000006@s.whatsapp.net", CallState.RINGING, CallState.ACTIVE
    )
    ended = a_call(
        session,
        "sip:a.very.long.user.name.for.a.trunk@sip.carrier.example.com",
        CallState.ENDED,
        reason="session_disconnected",
    )
    a_call(session, "+442079460958")
    upload = SimpleUploadedFile(
        "a-recording-with-a-rather-long-file-name.wav",
        SPEECH_WAV.read_bytes(),
        content_type="audio/wav",
    )
    asset_services.asset_create(environment=tenant.test, upload=upload)
    wait_for(lambda: AudioAsset.objects.filter(status="ready").exists(), timeout=30)
    # Made last: no event reaches it, so no delivery is attempted.
    webhook = event_services.webhook_create(
        environment=tenant.test,
        url="http://127.0.0.1:9/switchboard/webhooks/events/with/a/rather/long/path",
        events=["*"],
        description="Where our CRM hears about calls",
    ).endpoint

    tab.do(the_login_page_fits)
    tab.do(log_in, owner.username, PASSWORD)
    visited = tab.do(every_section_fits)
    assert {"/dashboard/calls/", "/dashboard/console/", "/dashboard/keys/"} <= set(
        visited
    )
    calls = f"/dashboard/calls/{session.public_id}"
    tab.do(
        the_pages_fit,
        [
            f"/dashboard/sessions/{session.public_id}/",
            f"{calls}/{live.public_id}/",
            f"{calls}/{ended.public_id}/",
            f"/dashboard/console/?session={session.public_id}&call={live.public_id}",
            f"/dashboard/webhooks/{webhook.public_id}/",
        ],
    )
