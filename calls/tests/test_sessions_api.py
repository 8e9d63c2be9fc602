"""Sessions over the REST API: create, list, pair by QR or code, disconnect, delete."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from conftest import Tenant, is_problem
from events.models import Event

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/sessions"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SESSION_FIELDS = {
    "sessionId",
    "displayName",
    "deviceBrowser",
    "status",
    "paired",
    "active",
    "connected",
    "connectionState",
    "phoneJid",
    "createdAt",
    "updatedAt",
    "connectedAt",
}


def create(client: APIClient, name: str = "Front desk", **extra: Any) -> dict:
    response = client.post(SESSIONS, {"displayName": name, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def url(session_id: str, tail: str = "") -> str:
    return f"{SESSIONS}/{session_id}{tail}"


def helper(session_id: str, action: str) -> str:
    return f"/api/v1/test-helpers/sessions/{session_id}/{action}"


def post(client: APIClient, path: str, body: dict | None = None) -> Any:
    return client.post(path, body or {}, format="json")


def connect(client: APIClient, session_id: str) -> dict:
    response = post(client, url(session_id, "/connect"))
    assert response.status_code == 200, response.content
    return response.json()["data"]


def scan(client: APIClient, session_id: str) -> dict:
    response = post(client, helper(session_id, "scan"))
    assert response.status_code == 200, response.content
    return response.json()["data"]


def paired_session(client: APIClient) -> dict:
    session = create(client)
    connect(client, session["sessionId"])
    return scan(client, session["sessionId"])


def events_of(session_id: str, type: str | None = None) -> list[Event]:
    events = Event.objects.filter(session_public_id=session_id).order_by("id")
    if type is not None:
        events = events.filter(type=type)
    return list(events)


def types_of(session_id: str) -> list[str]:
    return [event.type for event in events_of(session_id)]


# ---------------------------------------------------------------- create, list, get


def test_create_returns_an_unpaired_session_in_camel_case(tenant: Tenant) -> None:
    response = tenant.client().post(
        SESSIONS,
        {"displayName": "Front desk", "deviceBrowser": "Chrome"},
        format="json",
    )
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert set(data) >= SESSION_FIELDS
    assert re.match(r"^[0-9a-f-]{36}$", data["sessionId"])
    assert data["displayName"] == "Front desk"
    assert data["deviceBrowser"] == "Chrome"
    assert data["connectionState"] == "created"
    assert data["status"] == "unpaired"
    assert data["paired"] is False
    assert data["active"] is False
    assert data["connected"] is False
    assert data["phoneJid"] is None
    assert data["connectedAt"] is None
    assert TIMESTAMP.match(data["createdAt"]) and TIMESTAMP.match(data["updatedAt"])
    assert types_of(data["sessionId"]) == ["session.created"]
    created = events_of(data["sessionId"])[0]
    assert created.environment_id == tenant.test.pk
    assert created.data["session"]["sessionId"] == data["sessionId"]


@pytest.mark.parametrize(
    "body",
    [{}, {"displayName": ""}, {"displayName": "x" * 101}, {"displayName": None}],
    ids=["missing", "blank", "too-long", "null"],
)
def test_create_refuses_a_bad_display_name_naming_the_field(
    tenant: Tenant, body: dict
) -> None:
    response = tenant.client().post(SESSIONS, body, format="json")
    assert is_problem(response, 400, "validation_error")["param"] == "displayName"
    assert tenant.client().get(SESSIONS).json()["data"] == []


def test_list_is_paginated_newest_first(tenant: Tenant) -> None:
    client = tenant.client()
    ids = [create(client, f"Line {index}")["sessionId"] for index in range(3)]
    first = client.get(SESSIONS, {"limit": 2}).json()
    assert [item["sessionId"] for item in first["data"]] == [ids[2], ids[1]]
    assert first["nextCursor"]
    second = client.get(SESSIONS, {"limit": 2, "cursor": first["nextCursor"]}).json()
    assert [item["sessionId"] for item in second["data"]] == [ids[0]]
    assert second["nextCursor"] is None
    everything = client.get(SESSIONS).json()
    assert [item["sessionId"] for item in everything["data"]] == ids[::-1]
    assert set(everything["data"][0]) >= SESSION_FIELDS


def test_get_returns_the_session(tenant: Tenant) -> None:
    client = tenant.client()
    created = create(client, "Support")
    response = client.get(url(created["sessionId"]))
    assert response.status_code == 200
    assert response.json()["data"] == created


@pytest.mark.parametrize(
    "session_id", ["not-a-uuid", "0190a1b2-0000-7000-8000-0000000000ff"]
)
def test_get_of_a_missing_session_is_404(tenant: Tenant, session_id: str) -> None:
    is_problem(tenant.client().get(url(session_id)), 404, "session_not_found")


# ---------------------------------------------------------------- pairing by QR


def test_connect_starts_pairing_with_a_qr(tenant: Tenant) -> None:
    client = tenant.client()
    session = create(client)
    data = connect(client, session["sessionId"])
    assert data["connectionState"] == "connecting"
    assert data["status"] == "pairing"
    assert data["paired"] is False and data["connected"] is False
    assert data["active"] is True
    qr_events = events_of(session["sessionId"], "auth.qr")
    assert len(qr_events) == 1
    assert qr_events[0].data["qr"]


def test_qr_gives_payload_ttl_and_creation_time(tenant: Tenant) -> None:
    client = tenant.client()
    session = create(client)
    connect(client, session["sessionId"])
    response = client.get(url(session["sessionId"], "/auth/qr"))
    assert response.status_code == 200, response.content
    qr = response.json()["data"]
    assert set(qr) == {"qr", "ttlMs", "createdAt"}
    assert qr["qr"] == events_of(session["sessionId"], "auth.qr")[0].data["qr"]
    assert 0 < qr["ttlMs"] <= 20_000
    assert TIMESTAMP.match(qr["createdAt"])
    # Asking again within the TTL gives the same QR.
    assert (
        client.get(url(session["sessionId"], "/auth/qr")).json()["data"]["qr"]
        == (qr["qr"])
    )


def test_qr_rotates_after_its_ttl(tenant: Tenant, settings: Any) -> None:
    settings.SESSION_QR_TTL_S = 1
    client = tenant.client()
    session = create(client)
    connect(client, session["sessionId"])
    first = client.get(url(session["sessionId"], "/auth/qr")).json()["data"]
    assert 0 < first["ttlMs"] <= 1000
    time.sleep(1.1)
    second = client.get(url(session["sessionId"], "/auth/qr")).json()["data"]
    assert second["qr"] != first["qr"]
    assert second["createdAt"] > first["createdAt"]
    assert 0 < second["ttlMs"] <= 1000
    qr_events = events_of(session["sessionId"], "auth.qr")
    assert [event.data["qr"] for event in qr_events] == [first["qr"], second["qr"]]


def test_qr_before_connect_is_409_not_connecting(tenant: Tenant) -> None:
    client = tenant.client()
    session = create(client)
    response = client.get(url(session["sessionId"], "/auth/qr"))
    is_problem(response, 409, "session_not_connecting")


def test_qr_after_pairing_is_409_already_paired(tenant: Tenant) -> None:
    client = tenant.client()
    session = paired_session(client)
    response = client.get(url(session["sessionId"], "/auth/qr"))
    is_problem(response, 409, "session_already_paired")


def test_scan_pairs_and_connects_the_session(tenant: Tenant) -> None:
    client = tenant.client()
    session = create(client)
    connect(client, session["sessionId"])
    data = scan(client, session["sessionId"])
    assert data["paired"] is True
    assert data["connected"] is True
    assert data["connectionState"] == "connected"
    assert data["status"] == "ready"
    assert re.match(r"^\d{6,15}@s\.whatsapp\.net$", data["phoneJid"])
    assert TIMESTAMP.match(data["connectedAt"])
    assert client.get(url(session["sessionId"])).json()["data"] == data
    paired = events_of(session["sessionId"], "auth.paired")
    assert [event.data["phoneJid"] for event in paired] == [data["phoneJid"]]
    state = events_of(session["sessionId"], "connection.state")[-1].data
    assert state == {"connectionState": "connected", "connected": True, "paired": True}


def test_scan_before_connect_is_409_not_connecting(tenant: Tenant) -> None:
    client = tenant.client()
    session = create(client)
    response = post(client, helper(session["sessionId"], "scan"))
    is_problem(response, 409, "session_not_connecting")
    assert client.get(url(session["sessionId"])).json()["data"]["paired"] is False


def test_pairing_flow_emits_events_in_order(tenant: Tenant) -> None:
    client = tenant.client()
    session = create(client)
    connect(client, session["sessionId"])
    scan(client, session["sessionId"])
    events = events_of(session["sessionId"])
    assert [event.type for event in events] == [
        "session.created",
        "connection.state",
        "auth.qr",
        "auth.paired",
        "connection.state",
    ]
    assert events[1].data["connectionState"] == "connecting"
    assert events[4].data["connectionState"] == "connected"
    assert all(event.environment_id == tenant.test.pk for event in events)


# ---------------------------------------------------------------- pairing by code


def test_pairing_code_is_shaped_like_abcd_1234(tenant: Tenant) -> None:
    client = tenant.client()
    session = create(client)
    connect(client, session["sessionId"])
    response = post(
        client,
        url(session["sessionId"], "/auth/pairing-code"),
        {"phoneNumber": "+15551230000"},
    )
    assert response.status_code == 200, response.content
    assert re.match(r"^[A-Z]{4}-\d{4}$", response.json()["data"]["code"])
    # The simulated phone enters the code: the line is linked to that number.
    data = scan(client, session["sessionId"])
    assert data["phoneJid"] == "15551230000@s.whatsapp.net"


@pytest.mark.parametrize(
    "body",
    [{}, {"phoneNumber": "call me"}, {"phoneNumber": "123"}, {"phoneNumber": ""}],
    ids=["missing", "letters", "too-short", "blank"],
)
def test_pairing_code_refuses_a_bad_phone_number_naming_the_field(
    tenant: Tenant, body: dict
) -> None:
    client = tenant.client()
    session = create(client)
    connect(client, session["sessionId"])
    response = post(client, url(session["sessionId"], "/auth/pairing-code"), body)
    assert is_problem(response, 400, "validation_error")["param"] == "phoneNumber"


def test_pairing_code_before_connect_is_409_not_connecting(tenant: Tenant) -> None:
    client = tenant.client()
    session = create(client)
    response = post(
        client,
        url(session["sessionId"], "/auth/pairing-code"),
        {"phoneNumber": "+15551230000"},
    )
    is_problem(response, 409, "session_not_connecting")


def test_pairing_code_after_pairing_is_409_already_paired(tenant: Tenant) -> None:
    client = tenant.client()
    session = paired_session(client)
    response = post(
        client,
        url(session["sessionId"], "/auth/pairing-code"),
        {"phoneNumber": "+15551230000"},
    )
    is_problem(response, 409, "session_already_paired")


# ---------------------------------------------------------------- disconnect, logout


def test_disconnect_keeps_credentials_and_reconnect_needs_no_qr(
    tenant: Tenant,
) -> None:
    client = tenant.client()
    session = paired_session(client)
    session_id = session["sessionId"]
    response = post(client, url(session_id, "/disconnect"))
    assert response.status_code == 200, response.content
    offline = response.json()["data"]
    assert offline["connectionState"] == "disconnected"
    assert offline["connected"] is False and offline["active"] is False
    assert offline["paired"] is True
    assert offline["phoneJid"] == session["phoneJid"]
    assert offline["status"] == "offline"
    qr_count = len(events_of(session_id, "auth.qr"))

    again = connect(client, session_id)
    assert again["connectionState"] == "connected"
    assert again["paired"] is True and again["connected"] is True
    assert again["phoneJid"] == session["phoneJid"]
    assert again["connectedAt"] >= session["connectedAt"]
    assert len(events_of(session_id, "auth.qr")) == qr_count
    is_problem(client.get(url(session_id, "/auth/qr")), 409, "session_already_paired")
    states = [
        e.data["connectionState"] for e in events_of(session_id, "connection.state")
    ]
    assert states == ["connecting", "connected", "disconnected", "connected"]


def test_logout_unlinks_the_line(tenant: Tenant) -> None:
    client = tenant.client()
    session_id = paired_session(client)["sessionId"]
    response = post(client, url(session_id, "/logout"))
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["paired"] is False
    assert data["phoneJid"] is None
    assert data["connected"] is False
    assert data["connectionState"] == "disconnected"
    assert client.get(url(session_id)).json()["data"] == data
    assert types_of(session_id)[-2:] == ["auth.logged_out", "connection.state"]
    # Linking again needs a new QR.
    assert connect(client, session_id)["connectionState"] == "connecting"
    assert client.get(url(session_id, "/auth/qr")).status_code == 200


# ---------------------------------------------------------------- delete


def test_delete_removes_the_session_from_list_and_get(tenant: Tenant) -> None:
    client = tenant.client()
    keep = create(client, "Keep")
    session_id = paired_session(client)["sessionId"]
    response = client.delete(url(session_id))
    assert response.status_code == 200, response.content
    assert response.json()["data"]["sessionId"] == session_id
    is_problem(client.get(url(session_id)), 404, "session_not_found")
    listed = [item["sessionId"] for item in client.get(SESSIONS).json()["data"]]
    assert listed == [keep["sessionId"]]
    assert types_of(session_id)[-1] == "session.deleted"
    assert "auth.logged_out" in types_of(session_id)
    # Gone means gone: every route of the session now answers 404.
    is_problem(client.delete(url(session_id)), 404, "session_not_found")
    is_problem(post(client, url(session_id, "/connect")), 404, "session_not_found")
    is_problem(post(client, helper(session_id, "scan")), 404, "session_not_found")
