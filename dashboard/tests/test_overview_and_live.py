"""The overview, and the login-session event stream that keeps every page live."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.test import Client

from calls import services as call_services
from calls.models import CallState, Direction
from conftest import LiveServer, Tenant
from dashboard.tests.conftest import paired_session
from events.models import Event
from events.services import event_emit


@pytest.mark.django_db
def test_the_overview_counts_live_calls_and_calls_today(
    member: Client, tenant: Tenant, outsider: Tenant
) -> None:
    session = paired_session(tenant.test)
    live = call_services.call_create(
        session=session,
        peer_address="15550000111@s.whatsapp.net",
        direction=Direction.OUTGOING,
        host="elsewhere",
    )
    ended = call_services.call_create(
        session=session,
        peer_address="15550000222@s.whatsapp.net",
        direction=Direction.OUTGOING,
        host="elsewhere",
    )
    call_services.call_transition(call_id=ended.pk, to=CallState.ENDED)
    call_services.call_create(
        session=paired_session(outsider.test),
        peer_address="15550000333@s.whatsapp.net",
        direction=Direction.OUTGOING,
        host="elsewhere",
    )
    page = member.get("/dashboard/").content.decode()
    assert 'data-testid="live-count">1<' in page
    assert 'data-testid="calls-today">2<' in page
    assert live.peer_address in page and "15550000333" not in page
    assert '<code class="event-type">call.ended</code>' in page
    assert 'hx-get="/dashboard/overview/stats"' in page
    stats = member.get("/dashboard/overview/stats").content.decode()
    assert 'data-testid="live-count">1<' in stats and "<html" not in stats


@pytest.mark.django_db
def test_every_page_resumes_its_event_stream_after_the_newest_event_it_saw(
    owner: Client, tenant: Tenant
) -> None:
    event = event_emit(environment=tenant.test, type="session.created", data={})
    page = owner.get("/dashboard/keys/").content.decode()
    assert (
        f'data-events-url="/dashboard/events/stream?lastEventId={event.public_id}"'
        in page
    )


@pytest.mark.django_db
def test_the_event_stream_needs_a_login(client: Client) -> None:
    assert client.get("/dashboard/events/stream").status_code == 401


def _login_cookie(as_role: Callable[..., Client], role: str, environment: Any) -> dict:
    browser = as_role(role, environment)
    return {"sessionid": browser.cookies["sessionid"].value}


def _read_events(lines: Iterator[str], count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for line in lines:
        if line.startswith("data: "):
            events.append(json.loads(line[len("data: ") :]))
            if len(events) == count:
                break
    return events


def test_the_event_stream_carries_the_chosen_environments_events_only(
    transactional_db: Any,
    as_role: Callable[..., Client],
    tenant: Tenant,
    outsider: Tenant,
    asgi_server: LiveServer,
) -> None:
    first = event_emit(environment=tenant.test, type="session.created", data={"n": 1})
    event_emit(environment=tenant.live, type="session.created", data={"n": "live"})
    event_emit(environment=outsider.test, type="session.created", data={"n": "them"})
    event_emit(environment=tenant.test, type="session.created", data={"n": 2})
    cookies = _login_cookie(as_role, "member", tenant.test)
    url = f"{asgi_server.url}/dashboard/events/stream?lastEventId={first.public_id}"
    with (
        httpx.Client(cookies=cookies, timeout=10) as client,
        client.stream("GET", url) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        replayed = _read_events(lines, 1)
        assert [e["data"] for e in replayed] == [{"n": 2}]
        event_emit(environment=outsider.test, type="call.state", data={"n": "them"})
        event_emit(environment=tenant.live, type="call.state", data={"n": "live"})
        event_emit(environment=tenant.test, type="call.state", data={"n": 3})
        live = _read_events(lines, 1)
        assert [(e["type"], e["data"]) for e in live] == [("call.state", {"n": 3})]
    assert Event.objects.count() == 7
