"""Dial-out streams take Wavix's body names (`stream_url`, `stream_type`,
`stream_channel`) as Wavix users send them, and errors name a field as it was sent."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from calls.models import Call, CallState
from calls.runtime.engine import Engine
from conftest import Tenant, is_problem
from tests.api_schema.conftest import wait_for

pytestmark = pytest.mark.usefixtures("fast_network")

RECEIVER = "ws://127.0.0.1:9/media"  # loopback; nothing listens


def _live_call(client: APIClient) -> str:
    session = client.post(
        "/api/v1/sessions", {"displayName": "w"}, format="json"
    ).json()["data"]["sessionId"]
    client.post(f"/api/v1/sessions/{session}/connect")
    client.post(f"/api/v1/test-helpers/sessions/{session}/scan")
    call = client.post(
        f"/api/v1/sessions/{session}/calls",
        {"to": "15550000001@s.whatsapp.net"},
        format="json",
    ).json()["data"]["callId"]
    wait_for(lambda: Call.objects.get(public_id=call).state == CallState.ACTIVE)
    return f"/api/v1/sessions/{session}/calls/{call}/streams"


@pytest.fixture
def streams_url(engine: Engine, tenant: Tenant) -> str:
    return _live_call(tenant.client())


def test_a_wavix_body_starts_a_stream(streams_url: str, tenant: Tenant) -> None:
    response = tenant.client().post(
        streams_url,
        {"stream_url": RECEIVER, "stream_type": "twoway", "stream_channel": "inbound"},
        format="json",
    )
    assert response.status_code == 201, response.content
    stream = response.json()["data"]
    assert (stream["url"], stream["type"], stream["channel"]) == (
        RECEIVER,
        "twoway",
        "inbound",
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"stream_url": "https://bot.example.com"}, "stream_url"),
        ({"url": "https://bot.example.com"}, "url"),
        ({"stream_url": RECEIVER, "stream_type": "sideways"}, "stream_type"),
        (
            {"stream_url": RECEIVER, "stream_type": "twoway", "stream_channel": "both"},
            "stream_channel",
        ),
        ({"stream_url": RECEIVER, "url": RECEIVER}, "stream_url"),
        ({}, "url"),
    ],
)
def test_an_error_names_the_field_as_it_was_sent(
    streams_url: str, tenant: Tenant, body: dict[str, Any], param: str
) -> None:
    response = tenant.client().post(streams_url, body, format="json")
    problem = is_problem(response, 400, "validation_error")
    assert problem["param"] == param
    assert problem["errors"][0]["param"] == param


def test_wavix_names_work_in_the_streams_of_a_new_call(
    engine: Engine, tenant: Tenant
) -> None:
    client = tenant.client()
    session = client.post(
        "/api/v1/sessions", {"displayName": "w"}, format="json"
    ).json()["data"]["sessionId"]
    client.post(f"/api/v1/sessions/{session}/connect")
    client.post(f"/api/v1/test-helpers/sessions/{session}/scan")
    calls = f"/api/v1/sessions/{session}/calls"
    to = "15550000001@s.whatsapp.net"

    refused = client.post(
        calls, {"to": to, "streams": [{"stream_url": "http://x"}]}, format="json"
    )
    assert is_problem(refused, 400)["param"] == "streams[0].stream_url"

    placed = client.post(
        calls,
        {"to": to, "streams": [{"stream_url": RECEIVER, "stream_channel": "both"}]},
        format="json",
    )
    assert placed.status_code == 201, placed.content
    (stream,) = placed.json()["data"]["streams"]
    assert (stream["url"], stream["channel"]) == (RECEIVER, "both")


def test_an_outsider_cannot_start_a_stream_on_the_call(
    streams_url: str, outsider: Tenant
) -> None:
    response = outsider.client().post(
        streams_url, {"stream_url": RECEIVER}, format="json"
    )
    is_problem(response, 404, "session_not_found")
