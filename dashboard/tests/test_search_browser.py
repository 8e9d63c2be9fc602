"""The Calls page's search in headless Chromium: type a number as people write it, pick an
end reason in words, and see just the calls that match, on a wide screen and a phone."""

from __future__ import annotations

from typing import Any

import pytest

from calls import services as call_services
from calls.models import Call, CallState, Direction, Session
from conftest import Tenant
from dashboard.tests.conftest import PASSWORD, Tab, make_user, paired_session
from dashboard.tests.test_browser import log_in
from dashboard.tests.test_narrow_screen import PHONE, fits_the_screen
from events.models import DeliveryStatus, Event, WebhookAttempt, WebhookDelivery
from events.services import webhook_create

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("transactional_db", "tasks_in_process"),
]

ROW_IDS = "rows => rows.map(row => row.dataset.callId)"


def an_ended_call(session: Session, peer: str, reason: str) -> Call:
    call = call_services.call_create(
        session=session, peer_address=peer, direction=Direction.OUTGOING, host="x"
    )
    ended = call_services.call_transition(
        call_id=call.pk, to=CallState.ENDED, end_reason=reason
    )
    assert ended is not None
    return ended


def shown_calls(page: Any) -> list[str]:
    return page.eval_on_selector_all("#calls-table tbody tr[data-call-id]", ROW_IDS)


def search_for_a_number(page: Any, typed: str) -> list[str]:
    page.click("nav.sidenav >> text=Calls")
    page.wait_for_url("**/dashboard/calls/")
    page.fill("#id_q", typed)
    page.press("#id_q", "Enter")
    page.wait_for_url(lambda url: "q=%2B1+555+000+0006" in url)
    assert page.input_value("#id_q") == typed
    return shown_calls(page)


def read_the_numbers(page: Any) -> list[str]:
    return page.locator("#calls-table tbody .phone").all_inner_texts()


def choose_an_end_reason(page: Any, words: str, clear_search: bool) -> list[str]:
    if clear_search:
        page.fill("#id_q", "")
    (reason,) = page.select_option("#id_end_reason", label=words)
    page.click("[data-testid=search-calls]")
    page.wait_for_url(lambda url: f"end_reason={reason}" in url)
    return shown_calls(page)


def the_results_fit_a_phone(page: Any) -> None:
    page.set_viewport_size(PHONE)
    page.reload()
    page.wait_for_load_state()
    fits_the_screen(page)


def test_a_number_typed_as_people_write_it_finds_its_calls(
    tab: Tab, tenant: Tenant
) -> None:
    owner = make_user("searcher", tenant, "owner")
    line = paired_session(tenant.test)
    hung_up = an_ended_call(line, "15550000006@s.whatsapp.net", "remote_hangup")
    busy_sip = an_ended_call(line, "+15550000006", "busy")
    busy_other = an_ended_call(line, "15550000007@s.whatsapp.net", "busy")
    london = an_ended_call(line, "+442079460958", "declined")

    tab.do(log_in, owner.username, PASSWORD)
    found = tab.do(search_for_a_number, "+1 555 000 0006")
    assert found == [str(busy_sip.public_id), str(hung_up.public_id)]
    assert tab.do(read_the_numbers) == ["+1 555 000 0006", "+1 555 000 0006"]

    found = tab.do(choose_an_end_reason, "The other side hung up", False)
    assert found == [str(hung_up.public_id)]

    found = tab.do(choose_an_end_reason, "The line was busy", True)
    assert found == [str(busy_other.public_id), str(busy_sip.public_id)]
    assert str(london.public_id) not in found
    tab.do(the_results_fit_a_phone)


def open_the_deliveries_on_a_phone(page: Any, webhook_id: str) -> dict[str, Any]:
    page.set_viewport_size(PHONE)
    page.goto(f"/dashboard/webhooks/{webhook_id}/")
    page.select_option("#id_status", "failed")
    page.click("[data-testid=filter-deliveries]")
    page.wait_for_url(lambda url: "status=failed" in url)
    page.click("#deliveries-table summary")
    body = page.locator("[data-testid=request-body]")
    body.wait_for()
    return {
        "body": body.inner_text(),
        "excerpt": page.locator("[data-testid=response-excerpt]").inner_text(),
        "fits": fits_the_screen(page),
    }


def test_the_delivery_log_opens_a_body_on_a_phone(tab: Tab, tenant: Tenant) -> None:
    owner = make_user("hook-reader", tenant, "owner")
    endpoint = webhook_create(
        environment=tenant.test, url="http://127.0.0.1:9/hooks", events=["*"]
    ).endpoint
    event = Event.objects.create(
        environment=tenant.test, type="call.ended", data={"endReason": "busy"}
    )
    delivery = WebhookDelivery.objects.create(
        environment=tenant.test,
        endpoint=endpoint,
        event=event,
        status=DeliveryStatus.FAILED,
        attempt_count=1,
        last_status_code=500,
    )
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=1,
        started_at=event.created_at,
        finished_at=event.created_at,
        status_code=500,
        response_body="Internal Server Error: the CRM is down for maintenance",
    )

    tab.do(log_in, owner.username, PASSWORD)
    seen = tab.do(open_the_deliveries_on_a_phone, str(endpoint.public_id))
    assert '"type": "call.ended"' in seen["body"]
    assert '"endReason": "busy"' in seen["body"]
    assert seen["excerpt"].startswith("Internal Server Error: the CRM is down")
