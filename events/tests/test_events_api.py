"""The event log as JSON for polling: ``GET /events?after=`` (and a session's events)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from conftest import Tenant, is_problem
from events.models import Event
from events.services import envelope_of, event_emit

API = "/api/v1"

pytestmark = pytest.mark.django_db


def emit(
    tenant: Tenant, type: str, session: str | None = None, **data: object
) -> Event:
    return event_emit(
        environment=tenant.test,
        type=type,
        data={"n": data.get("n", 0), **data},
        session_public_id=session,
    )


def ids(response: object) -> list[str]:
    return [event["id"] for event in response.json()["data"]]  # type: ignore[attr-defined]


def test_without_after_the_latest_events_come_oldest_first(
    api: APIClient, tenant: Tenant
) -> None:
    events = [emit(tenant, "asset.ready", n=n) for n in range(5)]
    response = api.get(f"{API}/events", {"limit": 3})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert ids(response) == [str(e.public_id) for e in events[2:]]
    assert response.json()["nextCursor"] is None


def test_after_pages_forward_through_the_log(api: APIClient, tenant: Tenant) -> None:
    events = [emit(tenant, "asset.ready", n=n) for n in range(5)]
    first = api.get(f"{API}/events", {"after": str(events[0].public_id), "limit": "2"})
    assert ids(first) == [str(e.public_id) for e in events[1:3]]
    cursor = first.json()["nextCursor"]
    assert cursor == str(events[2].public_id)
    rest = api.get(f"{API}/events", {"after": cursor, "limit": "2"})
    assert ids(rest) == [str(e.public_id) for e in events[3:5]]
    assert rest.json()["nextCursor"] is None
    caught_up = api.get(f"{API}/events", {"after": str(events[4].public_id)})
    assert caught_up.json() == {"data": [], "nextCursor": None}


def test_envelopes_are_the_same_as_in_webhooks_and_sse(
    api: APIClient, tenant: Tenant
) -> None:
    session = "0190f3a0-0000-7000-8000-000000000001"
    event = emit(
        tenant, "call.state", session, call={"snake_case_key": 1, "callId": "x"}
    )
    [shown] = api.get(f"{API}/events").json()["data"]
    assert shown == envelope_of(event)
    assert shown["data"]["call"]["snake_case_key"] == 1, "event data was re-cased"


def test_filters_by_type_and_session(api: APIClient, tenant: Tenant) -> None:
    one = "0190f3a0-0000-7000-8000-000000000001"
    two = "0190f3a0-0000-7000-8000-000000000002"
    a = emit(tenant, "call.state", one)
    b = emit(tenant, "call.ended", one)
    c = emit(tenant, "call.state", two)
    emit(tenant, "asset.ready")
    assert ids(api.get(f"{API}/events", {"type": "call.state"})) == [
        str(a.public_id),
        str(c.public_id),
    ]
    assert ids(api.get(f"{API}/events", {"type": "call.state,call.ended"})) == [
        str(e.public_id) for e in (a, b, c)
    ]
    assert ids(api.get(f"{API}/events", {"sessionId": one})) == [
        str(a.public_id),
        str(b.public_id),
    ]
    is_problem(api.get(f"{API}/events", {"type": "call.nope"}), 400)
    is_problem(api.get(f"{API}/events", {"sessionId": "nope"}), 400)


def test_a_sessions_events(api: APIClient, tenant: Tenant) -> None:
    response = api.post(f"{API}/sessions", {"displayName": "Line"}, format="json")
    session_id = response.json()["data"]["sessionId"]
    api.post(f"{API}/sessions/{session_id}/connect")
    emit(tenant, "asset.ready")
    shown = api.get(f"{API}/sessions/{session_id}/events").json()["data"]
    assert [e["type"] for e in shown][:2] == ["session.created", "connection.state"]
    assert {e["sessionId"] for e in shown} == {session_id}


def test_an_unknown_after_is_400(api: APIClient, outsider: Tenant) -> None:
    foreign = event_emit(environment=outsider.test, type="asset.ready", data={})
    for after in ("nope", str(foreign.public_id)):
        problem = is_problem(api.get(f"{API}/events", {"after": after}), 400)
        assert problem["param"] == "after"


def test_limit_is_checked(api: APIClient) -> None:
    is_problem(api.get(f"{API}/events", {"limit": 0}), 400)
    is_problem(api.get(f"{API}/events", {"limit": 101}), 400)


def test_others_never_see_the_events(
    api: APIClient, tenant: Tenant, outsider: Tenant
) -> None:
    response = api.post(f"{API}/sessions", {"displayName": "Line"}, format="json")
    session_id = response.json()["data"]["sessionId"]
    emit(tenant, "asset.ready")
    assert len(api.get(f"{API}/events").json()["data"]) == 2
    for stranger in (
        outsider.client("test"),
        outsider.client("live"),
        tenant.client("live"),
    ):
        assert stranger.get(f"{API}/events").json()["data"] == []
        assert (
            stranger.get(f"{API}/events", {"sessionId": session_id}).json()["data"]
            == []
        )
        is_problem(
            stranger.get(f"{API}/sessions/{session_id}/events"),
            404,
            "session_not_found",
        )


def test_no_key_is_401(anon: APIClient) -> None:
    is_problem(anon.get(f"{API}/events"), 401, "missing_api_key")


def test_other_methods_are_405(api: APIClient) -> None:
    is_problem(api.post(f"{API}/events", {}, format="json"), 405)
