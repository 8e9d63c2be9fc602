"""A media process refuses calls beyond MEDIA_MAX_CALLS instead of degrading all of them,
and says how loaded it is on /healthz, /readyz and /metrics."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from calls.models import Call
from calls.runtime.engine import Engine
from calls.tests.conftest import wait_for
from calls.tests.test_calls_api import API, calls_url, ready_session
from config import home
from conftest import is_problem

NEVER_ANSWERS = "15550000004@s.whatsapp.net"  # rings until the ring timeout
CALLER = "15550009999@s.whatsapp.net"


@pytest.fixture
def two_calls(engine: Engine, fast_network: Any) -> Engine:
    """An engine carrying nothing, that takes two calls."""
    fast_network.CALL_RING_TIMEOUT_S = 60.0

    async def drop_all() -> None:
        for runtime in list(engine.runtimes.values()):
            runtime.drop()

    home.run_sync(drop_all())
    wait_for(lambda: engine.load == 0, timeout=10)
    fast_network.MEDIA_MAX_CALLS = 2
    return engine


def metric(client: Any, name: str) -> float:
    text = client.get("/metrics").content.decode()
    [line] = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


def test_a_full_process_refuses_the_next_call_and_takes_one_again_once_a_call_ends(
    two_calls: Engine, api: APIClient, client: Any
) -> None:
    session_id = ready_session(api)
    placed = [
        api.post(calls_url(session_id), {"to": NEVER_ANSWERS}, format="json")
        for _ in range(2)
    ]
    assert [response.status_code for response in placed] == [201, 201]
    assert two_calls.load == 2 and two_calls.full
    rows = Call.objects.count()

    refused = api.post(calls_url(session_id), {"to": NEVER_ANSWERS}, format="json")
    problem = is_problem(refused, 503, "media_capacity")
    assert "2 calls" in problem["detail"]
    assert refused["Retry-After"] == "2"
    assert Call.objects.count() == rows  # nothing written for the refused call

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["mediaCapacity"]
    assert ready.json()["media"] | {"clockLatenessP99Ms": 0} == {
        "calls": 2,
        "bridgedSockets": 0,
        "capacity": 2,
        "full": True,
        "clockLatenessP99Ms": 0,
    }
    assert client.get("/healthz").status_code == 200  # alive, only full
    assert metric(client, "switchboard_media_calls") == 2.0
    assert metric(client, "switchboard_media_full") == 1.0
    assert metric(client, "switchboard_media_capacity") == 2.0

    first = placed[0].json()["data"]
    ended = api.post(calls_url(session_id, first["callId"], "/end"))
    assert ended.status_code == 200, ended.content
    wait_for(lambda: two_calls.load == 1, timeout=10)
    assert client.get("/readyz").status_code == 200
    assert metric(client, "switchboard_media_full") == 0.0
    again = api.post(calls_url(session_id), {"to": NEVER_ANSWERS}, format="json")
    assert again.status_code == 201, again.content


def test_a_full_process_refuses_an_incoming_call_without_a_trace(
    two_calls: Engine, api: APIClient
) -> None:
    session_id = ready_session(api)
    for _ in range(2):
        assert (
            api.post(
                calls_url(session_id), {"to": NEVER_ANSWERS}, format="json"
            ).status_code
            == 201
        )
    rows = Call.objects.count()
    offered = api.post(
        f"{API}/test-helpers/sessions/{session_id}/incoming-calls",
        {"from": CALLER},
        format="json",
    )
    is_problem(offered, 503, "media_capacity")
    assert Call.objects.count() == rows
    assert not Call.objects.filter(peer_address=CALLER).exists()


def test_no_limit_when_the_capacity_is_zero(
    two_calls: Engine, api: APIClient, settings: Any
) -> None:
    settings.MEDIA_MAX_CALLS = 0
    session_id = ready_session(api)
    statuses = [
        api.post(
            calls_url(session_id), {"to": NEVER_ANSWERS}, format="json"
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [201, 201, 201]
    assert two_calls.load == 3 and not two_calls.full
