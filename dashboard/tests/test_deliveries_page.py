"""A webhook's delivery log: by status, the body each delivery sent, its last answer, page
by page, and only the chosen environment's endpoint."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from conftest import Tenant
from dashboard.selectors import DELIVERIES_PER_PAGE
from events.models import (
    DeliveryStatus,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from events.services import envelope_of, webhook_create

pytestmark = pytest.mark.django_db

HOOK = "http://127.0.0.1:9/switchboard"
ROW = re.compile(r'<tr data-delivery-id="([0-9a-f-]{36})"')
BODY = re.compile(r'<pre class="json" data-testid="request-body">(.*?)</pre>', re.S)
OLDER = re.compile(r'href="([^"]+)" rel="next" data-testid="older-deliveries"')


def endpoint_of(tenant: Tenant, environment: str = "test") -> WebhookEndpoint:
    return webhook_create(
        environment=getattr(tenant, environment), url=HOOK, events=["*"]
    ).endpoint


def a_delivery(
    endpoint: WebhookEndpoint,
    status: str = DeliveryStatus.PENDING,
    *,
    event_type: str = "call.ended",
    answers: tuple[tuple[int | None, str, str], ...] = (),
) -> WebhookDelivery:
    """A delivery of a new event, with one attempt per ``(status code, body, error)``."""
    event = Event.objects.create(
        environment=endpoint.environment,
        type=event_type,
        data={"callId": "0190aaaa-0000-7000-8000-000000000001", "endReason": "busy"},
    )
    last_code = answers[-1][0] if answers else None
    delivery = WebhookDelivery.objects.create(
        environment=endpoint.environment,
        endpoint=endpoint,
        event=event,
        status=status,
        attempt_count=len(answers),
        last_status_code=last_code,
    )
    started = timezone.now() - timedelta(minutes=len(answers))
    for number, (code, body, error) in enumerate(answers, start=1):
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started + timedelta(minutes=number),
            finished_at=started + timedelta(minutes=number, seconds=1),
            succeeded=code is not None and 200 <= code < 300,
            status_code=code,
            error=error,
            response_body=body,
        )
    return delivery


def shown(client: Client, endpoint: WebhookEndpoint, query: str = "") -> str:
    response = client.get(f"/dashboard/webhooks/{endpoint.public_id}/{query}")
    assert response.status_code == 200
    return response.content.decode()


def delivery_ids(page: str) -> list[str]:
    return ROW.findall(page)


def test_deliveries_are_filtered_by_status(owner: Client, tenant: Tenant) -> None:
    endpoint = endpoint_of(tenant)
    pending = a_delivery(endpoint)
    succeeded = a_delivery(endpoint, DeliveryStatus.SUCCEEDED, answers=((200, "", ""),))
    failed = a_delivery(endpoint, DeliveryStatus.FAILED, answers=((500, "", ""),))
    everything = delivery_ids(shown(owner, endpoint))
    assert everything == [str(d.public_id) for d in (failed, succeeded, pending)]
    for status, delivery in (
        ("pending", pending),
        ("succeeded", succeeded),
        ("failed", failed),
    ):
        page = shown(owner, endpoint, f"?status={status}")
        assert delivery_ids(page) == [str(delivery.public_id)], status
        assert f'<option value="{status}" selected>' in page
    page = shown(owner, endpoint, "?status=lost")
    assert "Select a valid choice" in page
    assert len(delivery_ids(page)) == 3


def test_a_status_with_no_deliveries_says_so(owner: Client, tenant: Tenant) -> None:
    endpoint = endpoint_of(tenant)
    a_delivery(endpoint)
    page = shown(owner, endpoint, "?status=failed")
    assert delivery_ids(page) == [] and "No failed deliveries." in page


def test_each_delivery_shows_the_body_it_sent(owner: Client, tenant: Tenant) -> None:
    endpoint = endpoint_of(tenant)
    delivery = a_delivery(endpoint, event_type="call.state")
    page = shown(owner, endpoint)
    assert "<details>" in page and "<summary>Request body</summary>" in page
    (body,) = BODY.findall(page)
    text = html.unescape(body)
    assert json.loads(text) == json.loads(
        json.dumps(envelope_of(delivery.event), default=str)
    )
    assert '\n  "type": "call.state",\n' in text  # pretty: one field a line
    assert "<code>call.state</code>" in page


def test_the_last_attempts_answer_is_shown(owner: Client, tenant: Tenant) -> None:
    endpoint = endpoint_of(tenant)
    long_answer = "upstream says no " + "x" * 900
    a_delivery(
        endpoint,
        DeliveryStatus.FAILED,
        answers=(
            (None, "", "Connection refused"),
            (503, "first answer: maintenance", ""),
            (502, long_answer, ""),
        ),
    )
    page = shown(owner, endpoint)
    assert 'data-testid="response-status">HTTP 502<' in page
    assert "HTTP 503" not in page and "first answer: maintenance" not in page
    excerpt = re.search(r'data-testid="response-excerpt"[^>]*>([^<]*)<', page)
    assert excerpt, page
    assert excerpt.group(1).startswith("upstream says no xxx")
    assert excerpt.group(1).endswith("…") and len(excerpt.group(1)) == 120
    assert 'data-testid="attempt-count">3<' in page


def test_a_refused_connection_shows_its_error(owner: Client, tenant: Tenant) -> None:
    endpoint = endpoint_of(tenant)
    a_delivery(
        endpoint, DeliveryStatus.PENDING, answers=((None, "", "Connection refused"),)
    )
    page = shown(owner, endpoint)
    assert "Connection refused" in page and "response-status" not in page


def test_older_deliveries_are_a_page_away_and_keep_the_status(
    owner: Client, tenant: Tenant
) -> None:
    endpoint = endpoint_of(tenant)
    failed = [
        a_delivery(endpoint, DeliveryStatus.FAILED, answers=((500, "no", ""),))
        for _ in range(DELIVERIES_PER_PAGE + 2)
    ]
    a_delivery(endpoint, DeliveryStatus.SUCCEEDED, answers=((200, "ok", ""),))
    newest_first = [str(d.public_id) for d in reversed(failed)]
    first = shown(owner, endpoint, "?status=failed")
    assert delivery_ids(first) == newest_first[:DELIVERIES_PER_PAGE]
    link = OLDER.search(first)
    assert link, first
    href = html.unescape(link.group(1))
    assert parse_qs(urlsplit(href).query)["status"] == ["failed"]
    second = owner.get(href).content.decode()
    assert delivery_ids(second) == newest_first[DELIVERIES_PER_PAGE:]
    assert OLDER.search(second) is None
    assert 'data-testid="newest-deliveries"' in second
    # Without a status, the succeeded one is the newest of all.
    assert len(delivery_ids(shown(owner, endpoint))) == DELIVERIES_PER_PAGE


def test_members_read_the_log_without_retrying(member: Client, tenant: Tenant) -> None:
    endpoint = endpoint_of(tenant)
    a_delivery(endpoint, DeliveryStatus.FAILED, answers=((500, "broken", ""),))
    page = shown(member, endpoint, "?status=failed")
    assert "broken" in page and "Request body" in page and "Retry" not in page


def test_only_this_endpoints_deliveries_are_shown(
    owner: Client, tenant: Tenant, outsider: Tenant
) -> None:
    mine, other = endpoint_of(tenant), endpoint_of(tenant)
    kept = a_delivery(mine, DeliveryStatus.FAILED, answers=((500, "mine", ""),))
    a_delivery(other, DeliveryStatus.FAILED, answers=((500, "other endpoint", ""),))
    live = endpoint_of(tenant, "live")
    a_delivery(live, DeliveryStatus.FAILED, answers=((500, "live env", ""),))
    theirs = endpoint_of(outsider)
    a_delivery(theirs, DeliveryStatus.FAILED, answers=((500, "outsider", ""),))
    page = shown(owner, mine, "?status=failed")
    assert delivery_ids(page) == [str(kept.public_id)]
    for leaked in ("other endpoint", "live env", "outsider"):
        assert leaked not in page
    for endpoint in (live, theirs):
        for query in ("", "?status=failed", "?cursor=djE6OTk5OTk5"):
            url = f"/dashboard/webhooks/{endpoint.public_id}/{query}"
            assert owner.get(url).status_code == 404, url
