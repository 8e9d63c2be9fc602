"""Staff admin: events by session, webhook endpoints without secrets, deliveries retried."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from calls.tests.conftest import wait_for
from conftest import Tenant
from events.models import Event, WebhookDelivery
from events.tests.conftest import API, Receiver, Reply, create_webhook, settled

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_retries"),
]


@pytest.fixture
def staff(client: Any) -> Any:
    user = get_user_model().objects.create_superuser(
        "staff", "staff@example.com", "pw-staff-123"
    )
    client.force_login(user)
    return client


def new_session(client: APIClient, name: str) -> str:
    response = client.post(f"{API}/sessions", {"displayName": name}, format="json")
    return response.json()["data"]["sessionId"]


def test_events_filter_by_session(staff: Any, api: APIClient) -> None:
    one = new_session(api, "Line one")
    two = new_session(api, "Line two")
    page = staff.get("/admin/events/event/").content.decode()
    assert "Line one" in page and "Line two" in page  # the session filter's choices
    only_one = staff.get(f"/admin/events/event/?session={one}").content.decode()
    [mine] = Event.objects.filter(session_public_id=one)
    [theirs] = Event.objects.filter(session_public_id=two)
    assert str(mine.public_id) in only_one
    assert str(theirs.public_id) not in only_one


def test_webhook_pages_never_show_the_secret(
    staff: Any, api: APIClient, receiver: Receiver
) -> None:
    hook = create_webhook(api, receiver.url, ["*"])
    rotated = api.post(f"{API}/webhooks/{hook['id']}/rotate-secret").json()["data"]
    new_session(api, "Line")
    wait_for(settled(hook["id"]))
    delivery = WebhookDelivery.objects.get()
    pages = [
        staff.get("/admin/events/webhookendpoint/"),
        staff.get(f"/admin/events/webhookendpoint/{delivery.endpoint_id}/change/"),
        staff.get("/admin/events/webhookdelivery/"),
        staff.get(f"/admin/events/webhookdelivery/{delivery.pk}/change/"),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        for secret in (hook["secret"], rotated["secret"]):
            assert secret not in html
            assert secret.removeprefix("whsec_") not in html
    assert receiver.url in pages[0].content.decode()
    assert "1 deliveries" in pages[1].content.decode()
    other = create_webhook(api, receiver.url + "/other", ["asset.ready"])
    only_first = staff.get(
        f"/admin/events/webhookdelivery/?webhook={hook['id']}"
    ).content.decode()
    assert str(delivery.public_id) in only_first
    none = staff.get(f"/admin/events/webhookdelivery/?webhook={other['id']}")
    assert str(delivery.public_id) not in none.content.decode()


def test_staff_retry_a_failed_delivery(
    staff: Any, api: APIClient, receiver: Receiver, tenant: Tenant
) -> None:
    receiver.answer(Reply(400))
    hook = create_webhook(api, receiver.url, ["session.created"])
    new_session(api, "Line")
    [failed] = wait_for(settled(hook["id"]))
    assert failed.status == "failed"

    response = staff.post(
        "/admin/events/webhookdelivery/",
        {"action": "retry_deliveries", "_selected_action": [failed.pk]},
    )
    assert response.status_code == 302
    receiver.wait_for(2)
    wait_for(settled(hook["id"], statuses=("succeeded",)))
    failed.refresh_from_db()
    assert failed.status == "succeeded" and failed.attempt_count == 2
