"""Staff in the Django admin, in headless Chromium: the calls list fits a 1440 px screen,
and a live call's page ends it (``ended_by_staff``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db.models import F

from calls import services as call_services
from calls.models import Call, CallState, Direction, EndReason, Session
from calls.runtime import control
from calls.tests.conftest import wait_for
from conftest import Tenant, make_tenant
from dashboard.tests.conftest import Tab, paired_session

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("engine", "fast_network", "tasks_in_process"),
]

DESKTOP = {"width": 1440, "height": 900}
STAFF_PASSWORD = "staff-password-for-the-admin"
ECHO = "15550000001@s.whatsapp.net"

# The page's width, and what sticks out past the window's right edge, to say why.
MEASURE = """() => {
  const width = window.innerWidth;
  const sticking = [];
  for (const element of document.querySelectorAll("#changelist *")) {
    const box = element.getBoundingClientRect();
    if (box.width && box.right > width + 0.5) {
      sticking.push(`${element.tagName.toLowerCase()}.${element.className} (${Math.round(box.right)})`);
    }
  }
  const results = document.querySelector("#changelist-form .results");
  return {
    width,
    scrollWidth: document.documentElement.scrollWidth,
    // The list's own box scrolls sideways when the table is wider than it.
    listWidth: results.clientWidth,
    tableWidth: document.getElementById("result_list").scrollWidth,
    columns: Array.from(document.querySelectorAll("#result_list thead th"),
      (th) => `${th.className} ${Math.round(th.getBoundingClientRect().width)}`),
    sticking: sticking.slice(0, 8),
  };
}"""


def a_call_row(session: Session, peer: str, *states: str, reason: str = "") -> Call:
    """A call row hosted elsewhere, taken through ``states``: a full list to show."""
    call = call_services.call_create(
        session=session, peer_address=peer, direction=Direction.OUTGOING, host="x"
    )
    for state in states:
        moved = call_services.call_transition(
            call_id=call.pk, to=state, end_reason=reason
        )
        assert moved is not None
        call = moved
    return call


def log_in_to_the_admin(page: Any, username: str) -> None:
    page.set_viewport_size(DESKTOP)
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def the_calls_list(page: Any) -> dict[str, Any]:
    page.goto("/admin/calls/call/")
    page.wait_for_selector("#result_list")
    measured = page.evaluate(MEASURE)
    measured["rows"] = page.locator("#result_list tbody tr").count()
    return measured


def end_the_call_from_its_page(page: Any, call_id: str) -> str:
    page.goto(f"/admin/calls/call/?q={call_id}")
    page.click(f"#result_list a:has-text('{call_id}')")
    page.click("[data-testid=admin-end-call]")
    page.wait_for_selector(".messagelist .success")
    return str(page.locator(".messagelist").inner_text())


def test_staff_see_every_call_on_one_screen_and_end_a_live_one(
    tab: Tab, tenant: Tenant
) -> None:
    get_user_model().objects.create_superuser(
        "staff", "staff@example.com", STAFF_PASSWORD
    )
    session = paired_session(tenant.test)
    live = control.call_place(session=session, to=ECHO, record=False).call
    wait_for(lambda: Call.objects.get(pk=live.pk).state == CallState.ACTIVE)
    # Rows with the longest things a call list shows: addresses, accounts, reasons.
    other = make_tenant("A customer with a rather long company name GmbH & Co. KG")
    elsewhere = paired_session(other.live, "Their line")
    longest = a_call_row(
        elsewhere,
        "sip:a.very.long.user.name.for.a.trunk@sip.carrier.example.com",
        CallState.ENDED,
        reason=EndReason.SESSION_DISCONNECTED,
    )
    Call.objects.filter(pk=longest.pk).update(  # the longest a call may last: 4 h
        answered_at=F("ended_at") - timedelta(hours=4)
    )
    a_call_row(session, "15550000006:12@s.whatsapp.net", CallState.RINGING)
    a_call_row(session, "+442079460958", CallState.ENDED, reason=EndReason.NO_ANSWER)

    tab.do(log_in_to_the_admin, "staff")
    measured = tab.do(the_calls_list)
    assert measured["rows"] == 4, measured
    assert measured["width"] == DESKTOP["width"], measured
    assert measured["scrollWidth"] <= DESKTOP["width"], measured
    assert measured["tableWidth"] <= measured["listWidth"], measured

    shown = tab.do(end_the_call_from_its_page, str(live.public_id))
    assert f"Ended call {live.public_id}" in shown
    ended = wait_for(
        lambda: (
            (call := Call.objects.get(pk=live.pk)).state == CallState.ENDED and call
        ),
        timeout=15,
    )
    assert ended.end_reason == EndReason.ENDED_BY_STAFF
    assert str(live.public_id) not in control.engine().runtimes
