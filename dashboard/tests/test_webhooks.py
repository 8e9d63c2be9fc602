"""Webhooks in the dashboard: create (secret once), edit, rotate, deliveries, retry, delete."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from conftest import Tenant
from events.models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from events.services import webhook_create

pytestmark = pytest.mark.django_db

SECRET_RE = re.compile(r'value="(whsec_[^"]+)" data-testid="new-secret"')
# Test settings allow plain HTTP to loopback, so no name needs resolving.
HOOK = "http://127.0.0.1:9/switchboard"


def endpoint_of(tenant: Tenant, environment: str = "test") -> WebhookEndpoint:
    return webhook_create(
        environment=getattr(tenant, environment), url=HOOK, events=["*"]
    ).endpoint


def failed_delivery(endpoint: WebhookEndpoint) -> WebhookDelivery:
    event = Event.objects.create(
        environment=endpoint.environment, type="call.ended", data={"callId": "x"}
    )
    return WebhookDelivery.objects.create(
        environment=endpoint.environment,
        endpoint=endpoint,
        event=event,
        status=DeliveryStatus.FAILED,
        attempt_count=16,
        last_status_code=503,
        last_error="Service Unavailable",
    )


def test_a_new_webhook_shows_its_secret_once(owner: Client, tenant: Tenant) -> None:
    response = owner.post(
        "/dashboard/webhooks/",
        {"url": HOOK, "events": ["call.ended", "call.state"], "description": "CRM"},
    )
    assert response.status_code == 200
    match = SECRET_RE.search(response.content.decode())
    assert match, response.content.decode()
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.environment == tenant.test
    assert endpoint.events == ["call.ended", "call.state"]
    assert endpoint.secret == match.group(1)
    listing = owner.get("/dashboard/webhooks/").content.decode()
    assert HOOK in listing and match.group(1) not in listing
    detail = owner.get(f"/dashboard/webhooks/{endpoint.public_id}/").content.decode()
    assert match.group(1) not in detail


def test_a_webhook_needs_a_usable_url_and_events(owner: Client) -> None:
    response = owner.post("/dashboard/webhooks/", {"url": "", "events": []})
    page = response.content.decode()
    assert response.status_code == 400
    assert "Give the URL that should receive the events." in page
    assert "Choose at least one event type" in page
    response = owner.post(
        "/dashboard/webhooks/", {"url": "https://hooks.invalid/in", "events": ["*"]}
    )
    assert response.status_code == 400
    assert "does not resolve" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_editing_a_webhook_changes_it(owner: Client, tenant: Tenant) -> None:
    endpoint = endpoint_of(tenant)
    response = owner.post(
        f"/dashboard/webhooks/{endpoint.public_id}/",
        {"url": HOOK + "/v2", "events": ["asset.ready"], "description": "assets"},
        follow=True,
    )
    assert "Webhook saved." in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.url == HOOK + "/v2" and endpoint.events == ["asset.ready"]
    assert not endpoint.enabled  # the box was unticked


def test_rotating_shows_the_new_secret_once(owner: Client, tenant: Tenant) -> None:
    endpoint = endpoint_of(tenant)
    before = endpoint.secret
    page = owner.get(f"/dashboard/webhooks/{endpoint.public_id}/").content.decode()
    assert 'data-confirm="Rotate the signing secret?' in page
    response = owner.post(f"/dashboard/webhooks/{endpoint.public_id}/rotate-secret")
    endpoint.refresh_from_db()
    assert endpoint.secret != before
    match = SECRET_RE.search(response.content.decode())
    assert match and match.group(1) == endpoint.secret


def test_the_delivery_log_shows_attempts_and_a_failed_delivery_can_be_retried(
    owner: Client, tenant: Tenant
) -> None:
    endpoint = endpoint_of(tenant)
    delivery = failed_delivery(endpoint)
    page = owner.get(f"/dashboard/webhooks/{endpoint.public_id}/").content.decode()
    assert "call.ended" in page and "HTTP 503" in page and ">16<" in page
    response = owner.post(
        f"/dashboard/webhooks/{endpoint.public_id}/deliveries/{delivery.public_id}/retry",
        follow=True,
    )
    assert "Sending the delivery again now." in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING


def test_deleting_a_webhook_asks_first(owner: Client, tenant: Tenant) -> None:
    endpoint = endpoint_of(tenant)
    page = owner.get(f"/dashboard/webhooks/{endpoint.public_id}/").content.decode()
    assert 'data-confirm="Delete this webhook and its delivery log?"' in page
    response = owner.post(f"/dashboard/webhooks/{endpoint.public_id}/delete")
    assert response["Location"] == "/dashboard/webhooks/"
    assert not WebhookEndpoint.objects.exists()


def test_members_read_webhooks_but_cannot_change_them(
    member: Client, tenant: Tenant
) -> None:
    endpoint = endpoint_of(tenant)
    delivery = failed_delivery(endpoint)
    assert "Add webhook" not in member.get("/dashboard/webhooks/").content.decode()
    page = member.get(f"/dashboard/webhooks/{endpoint.public_id}/").content.decode()
    assert "HTTP 503" in page and "Rotate secret" not in page and "Retry" not in page
    base = f"/dashboard/webhooks/{endpoint.public_id}"
    for url, data in [
        ("/dashboard/webhooks/", {"url": HOOK, "events": ["*"]}),
        (f"{base}/", {"url": HOOK, "events": ["*"], "enabled": "on"}),
        (f"{base}/rotate-secret", {}),
        (f"{base}/deliveries/{delivery.public_id}/retry", {}),
        (f"{base}/delete", {}),
    ]:
        assert member.post(url, data).status_code == 403, url
    assert WebhookEndpoint.objects.count() == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED


def test_another_accounts_or_environments_webhook_is_not_found(
    owner: Client, tenant: Tenant, outsider: Tenant
) -> None:
    for endpoint in (endpoint_of(outsider), endpoint_of(tenant, "live")):
        delivery = failed_delivery(endpoint)
        base = f"/dashboard/webhooks/{endpoint.public_id}"
        assert owner.get(f"{base}/").status_code == 404
        assert owner.post(f"{base}/delete").status_code == 404
        assert owner.post(f"{base}/rotate-secret").status_code == 404
        retry = f"{base}/deliveries/{delivery.public_id}/retry"
        assert owner.post(retry).status_code == 404
    assert WebhookEndpoint.objects.count() == 2
    assert HOOK not in owner.get("/dashboard/webhooks/").content.decode()


def test_a_delivery_of_another_webhook_is_not_found_under_this_one(
    owner: Client, tenant: Tenant
) -> None:
    mine, other = endpoint_of(tenant), endpoint_of(tenant)
    delivery = failed_delivery(other)
    url = f"/dashboard/webhooks/{mine.public_id}/deliveries/{delivery.public_id}/retry"
    assert owner.post(url).status_code == 404
