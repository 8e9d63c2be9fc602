"""Calls over the REST API against the simulated network (DESIGN §4.2–§4.4).

Calls change state on the engine's worker threads, so every test here runs with the
``engine`` fixture (a transactional database) and polls with ``wait_for``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from calls import hosts
from calls.models import Call, EngineHost
from calls.runtime.engine import Engine
from calls.tests.conftest import wait_for
from config.api.serializers import iso_ms
from conftest import Tenant, is_problem
from events.models import Event

pytestmark = pytest.mark.usefixtures("engine", "fast_network")

API = "/api/v1"
ECHO = "15550000001@s.whatsapp.net"
TALKER = "15550000002@s.whatsapp.net"
BUSY = "15550000003@s.whatsapp.net"
NO_ANSWER = "15550000004@s.whatsapp.net"
DECLINES = "15550000005@s.whatsapp.net"
HANGS_UP = "15550000006@s.whatsapp.net"
UNREACHABLE = "15550000007@s.whatsapp.net"
ANYONE = "15550004242@s.whatsapp.net"
CALLER = "4915112345678@s.whatsapp.net"
CALL_FIELDS = {
    "callId",
    "sessionId",
    "peerJid",
    "direction",
    "mediaType",
    "state",
    "endReason",
    "transport",
    "audioMuted",
    "record",
    "createdAt",
    "ringingAt",
    "answeredAt",
    "endedAt",
    "durationMs",
}


# ---------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _patient_ring_timeout(fast_network: Any) -> None:
    """Let calls ring for 5 s: a loaded machine must not turn a test into a timeout."""
    fast_network.CALL_RING_TIMEOUT_S = 5.0


@pytest.fixture
def quick_ring_timeout(fast_network: Any) -> float:
    """For tests about the ring timeout: 0.6 s."""
    fast_network.CALL_RING_TIMEOUT_S = 0.6
    return 0.6


def ready_session(client: APIClient) -> str:
    """Create a session, pair it through the test helper and return its id."""
    response = client.post(f"{API}/sessions", {"displayName": "Line"}, format="json")
    assert response.status_code == 201, response.content
    session_id = response.json()["data"]["sessionId"]
    assert client.post(f"{API}/sessions/{session_id}/connect").status_code == 200
    scanned = client.post(f"{API}/test-helpers/sessions/{session_id}/scan")
    assert scanned.status_code == 200, scanned.content
    return session_id


def calls_url(session_id: str, call_id: str = "", tail: str = "") -> str:
    base = f"{API}/sessions/{session_id}/calls"
    return f"{base}/{call_id}{tail}" if call_id else base


def place(client: APIClient, session_id: str, to: str, **extra: Any) -> dict:
    response = client.post(calls_url(session_id), {"to": to, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def ring_in(client: APIClient, session_id: str, behavior: str | None = None) -> dict:
    body = {"from": CALLER, **({"behavior": behavior} if behavior else {})}
    response = client.post(
        f"{API}/test-helpers/sessions/{session_id}/incoming-calls", body, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["data"]


def command(client: APIClient, call: dict, name: str, body: dict | None = None) -> Any:
    return client.post(
        calls_url(call["sessionId"], call["callId"], f"/{name}"),
        body or {},
        format="json",
    )


def snapshot(client: APIClient, call: dict) -> dict:
    response = client.get(calls_url(call["sessionId"], call["callId"]))
    assert response.status_code == 200, response.content
    return response.json()["data"]


def core(call: dict) -> dict:
    """The snapshot fields of DESIGN §4.2 (other features add their own)."""
    return {name: call[name] for name in CALL_FIELDS}


def state_is(call: dict, *states: str) -> Callable[[], bool]:
    return lambda: Call.objects.get(public_id=call["callId"]).state in states


def wait_until_ended(client: APIClient, call: dict, timeout: float = 5.0) -> dict:
    wait_for(state_is(call, "ended"), timeout=timeout)
    return snapshot(client, call)


def call_events(call: dict, type: str) -> list[Event]:
    return list(
        Event.objects.filter(type=type, data__callId=call["callId"]).order_by("id")
    )


def states_of(call: dict) -> list[str]:
    """The sequence of states the call's ``call.state`` events announced."""
    return [event.data["call"]["state"] for event in call_events(call, "call.state")]


def ended_reasons(call: dict) -> list[str]:
    return [event.data["endReason"] for event in call_events(call, "call.ended")]


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def listed(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["callId"] for item in response.json()["data"]]


# ---------------------------------------------------------------- placing calls


def test_call_needs_a_paired_and_connected_session(tenant: Tenant) -> None:
    client = tenant.client()
    response = client.post(f"{API}/sessions", {"displayName": "New"}, format="json")
    session_id = response.json()["data"]["sessionId"]
    is_problem(
        client.post(calls_url(session_id), {"to": ECHO}, format="json"),
        409,
        "session_not_ready",
    )
    client.post(f"{API}/sessions/{session_id}/connect")
    is_problem(
        client.post(calls_url(session_id), {"to": ECHO}, format="json"),
        409,
        "session_not_ready",
    )
    client.post(f"{API}/test-helpers/sessions/{session_id}/scan")
    client.post(f"{API}/sessions/{session_id}/disconnect")
    is_problem(
        client.post(calls_url(session_id), {"to": ECHO}, format="json"),
        409,
        "session_not_ready",
    )
    assert not Call.objects.exists()


@pytest.mark.parametrize(
    "to",
    [
        "15550000001",
        "+15550000001@s.whatsapp.net",
        "15550000001@g.us",
        "123@s.whatsapp.net",
        "",
        None,
    ],
)
def test_call_to_must_be_a_whatsapp_jid(tenant: Tenant, to: str | None) -> None:
    client = tenant.client()
    session_id = ready_session(client)
    response = client.post(calls_url(session_id), {"to": to}, format="json")
    assert is_problem(response, 400, "validation_error")["param"] == "to"
    assert not Call.objects.exists()


def test_echo_peer_answers_and_end_completes_the_call(tenant: Tenant) -> None:
    client = tenant.client()
    session_id = ready_session(client)
    call = place(client, session_id, ECHO)
    assert set(call) >= CALL_FIELDS
    assert call["sessionId"] == session_id
    assert call["peerJid"] == ECHO
    assert call["direction"] == "outgoing"
    assert call["mediaType"] == "audio" and call["carrier"] == "simulator"
    assert call["transport"] is None  # no client socket or stream is attached yet
    assert call["state"] != "ended"
    assert call["endReason"] is None and call["answeredAt"] is None
    assert call["audioMuted"] is False and call["record"] is True
    wait_for(state_is(call, "active"))
    time.sleep(0.05)  # let the call last a little: durationMs must be positive

    response = command(client, call, "end")
    assert response.status_code == 200, response.content
    ended = response.json()["data"]
    assert ended["state"] == "ended" and ended["endReason"] == "completed"
    assert core(snapshot(client, call)) == core(ended)
    assert ended["durationMs"] > 0
    created, ringing, answered, finished = (
        moment(ended[name])
        for name in ("createdAt", "ringingAt", "answeredAt", "endedAt")
    )
    assert created <= ringing <= answered <= finished
    assert states_of(call) == ["initiating", "ringing", "active", "ended"]
    assert ended_reasons(call) == ["completed"]


@pytest.mark.parametrize("to", [TALKER, ANYONE])
def test_answering_peers_stay_active(tenant: Tenant, to: str) -> None:
    client = tenant.client()
    call = place(client, ready_session(client), to)
    wait_for(state_is(call, "active"))
    # Longer than the 0006 peer would take to hang up: these peers stay on the line.
    time.sleep(0.4)
    current = snapshot(client, call)
    assert current["state"] == "active" and current["answeredAt"] is not None
    assert current["durationMs"] >= 300
    assert states_of(call) == ["initiating", "ringing", "active"]
    assert ended_reasons(call) == []


@pytest.mark.parametrize(
    ("to", "reason", "states"),
    [
        (BUSY, "busy", ["initiating", "ended"]),
        (DECLINES, "declined", ["initiating", "ringing", "ended"]),
        (UNREACHABLE, "failed", ["initiating", "ended"]),
        (NO_ANSWER, "no_answer", ["initiating", "ringing", "ended"]),
    ],
    ids=["busy", "declines", "unreachable", "no-answer"],
)
def test_peers_that_never_answer_end_the_call_with_their_reason(
    tenant: Tenant, quick_ring_timeout: float, to: str, reason: str, states: list[str]
) -> None:
    client = tenant.client()
    call = place(client, ready_session(client), to)
    ended = wait_until_ended(client, call)
    assert ended["endReason"] == reason
    assert ended["answeredAt"] is None and ended["durationMs"] == 0
    assert states_of(call) == states
    assert ended_reasons(call) == [reason]
    assert (ended["ringingAt"] is None) == ("ringing" not in states)


def test_unanswered_call_ends_no_answer_after_the_ring_timeout(
    tenant: Tenant, quick_ring_timeout: float
) -> None:
    client = tenant.client()
    call = place(client, ready_session(client), NO_ANSWER)
    wait_for(state_is(call, "ringing"))
    ended = wait_until_ended(client, call)
    assert ended["endReason"] == "no_answer"
    rang_for = moment(ended["endedAt"]) - moment(ended["createdAt"])
    assert rang_for.total_seconds() >= quick_ring_timeout - 0.01


def test_peer_0006_hangs_up_after_the_configured_delay(
    tenant: Tenant, settings: Any
) -> None:
    client = tenant.client()
    call = place(client, ready_session(client), HANGS_UP)
    wait_for(state_is(call, "active"))
    ended = wait_until_ended(client, call)
    assert ended["endReason"] == "remote_hangup"
    assert ended["durationMs"] > 0
    # The peer answers after dialling and ringing, then talks for SIM_HANGUP_AFTER_MS.
    lasted = moment(ended["endedAt"]) - moment(ended["createdAt"])
    expected_ms = (
        settings.SIM_DIAL_MS + settings.SIM_RING_MS + settings.SIM_HANGUP_AFTER_MS
    )
    assert lasted.total_seconds() * 1000 >= expected_ms - 5
    assert states_of(call) == ["initiating", "ringing", "active", "ended"]
    assert ended_reasons(call) == ["remote_hangup"]


def test_record_can_be_switched_off_per_call(tenant: Tenant) -> None:
    client = tenant.client()
    call = place(client, ready_session(client), TALKER, record=False)
    assert call["record"] is False
    wait_for(state_is(call, "active"))
    assert snapshot(client, call)["record"] is False


# ---------------------------------------------------------------- incoming calls


def test_incoming_call_rings_and_announces_itself(tenant: Tenant) -> None:
    client = tenant.client()
    session_id = ready_session(client)
    call = ring_in(client, session_id)
    assert call["direction"] == "incoming"
    assert call["state"] == "ringing"
    assert call["peerJid"] == CALLER
    assert call["ringingAt"] is not None and call["answeredAt"] is None
    incoming = call_events(call, "call.incoming")
    assert len(incoming) == 1
    assert incoming[0].data["call"]["state"] == "ringing"
    assert str(incoming[0].session_public_id) == session_id
    assert snapshot(client, call)["state"] == "ringing"


def test_accepting_an_incoming_call_makes_it_active(tenant: Tenant) -> None:
    client = tenant.client()
    call = ring_in(client, ready_session(client))
    response = command(client, call, "accept")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["state"] == "active" and data["answeredAt"] is not None
    assert snapshot(client, call)["state"] == "active"
    assert states_of(call) == ["ringing", "active"]


def test_rejecting_an_incoming_call_ends_it_rejected(tenant: Tenant) -> None:
    client = tenant.client()
    call = ring_in(client, ready_session(client))
    response = command(client, call, "reject")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["state"] == "ended" and data["endReason"] == "rejected"
    assert data["answeredAt"] is None
    assert states_of(call) == ["ringing", "ended"]
    assert ended_reasons(call) == ["rejected"]


@pytest.mark.parametrize("behavior", [None, "caller_gives_up"])
def test_unanswered_incoming_call_is_missed_after_the_ring_timeout(
    tenant: Tenant, quick_ring_timeout: float, behavior: str | None
) -> None:
    client = tenant.client()
    call = ring_in(client, ready_session(client), behavior)
    ended = wait_until_ended(client, call)
    assert ended["endReason"] == "missed"
    rang_for = moment(ended["endedAt"]) - moment(ended["ringingAt"])
    assert rang_for.total_seconds() >= quick_ring_timeout - 0.01
    assert states_of(call) == ["ringing", "ended"]
    assert ended_reasons(call) == ["missed"]


def test_hangup_after_5s_caller_hangs_up_after_the_configured_delay(
    tenant: Tenant, settings: Any
) -> None:
    client = tenant.client()
    call = ring_in(client, ready_session(client), "hangup_after_5s")
    assert command(client, call, "accept").status_code == 200
    ended = wait_until_ended(client, call)
    assert ended["endReason"] == "remote_hangup"
    assert ended["durationMs"] >= settings.SIM_HANGUP_AFTER_MS - 20
    assert states_of(call) == ["ringing", "active", "ended"]
    assert ended_reasons(call) == ["remote_hangup"]


def test_talker_caller_stays_on_the_line(tenant: Tenant) -> None:
    client = tenant.client()
    call = ring_in(client, ready_session(client), "talker")
    assert command(client, call, "accept").status_code == 200
    time.sleep(0.4)
    assert snapshot(client, call)["state"] == "active"
    assert states_of(call) == ["ringing", "active"]


def test_incoming_call_refuses_an_unknown_behavior(tenant: Tenant) -> None:
    client = tenant.client()
    session_id = ready_session(client)
    response = client.post(
        f"{API}/test-helpers/sessions/{session_id}/incoming-calls",
        {"from": CALLER, "behavior": "sings"},
        format="json",
    )
    assert is_problem(response, 400, "validation_error")["param"] == "behavior"
    response = client.post(
        f"{API}/test-helpers/sessions/{session_id}/incoming-calls",
        {"from": "anonymous"},
        format="json",
    )
    assert is_problem(response, 400, "validation_error")["param"] == "from"
    assert not Call.objects.exists()


# ---------------------------------------------------------------- commands


def test_accepting_an_outgoing_call_is_409_not_incoming(tenant: Tenant) -> None:
    client = tenant.client()
    call = place(client, ready_session(client), TALKER)
    wait_for(state_is(call, "active"))
    is_problem(command(client, call, "accept"), 409, "call_not_incoming")
    is_problem(command(client, call, "reject"), 409, "call_not_incoming")
    assert snapshot(client, call)["state"] == "active"


def test_accept_reject_and_mute_of_an_ended_call_are_409_not_active(
    tenant: Tenant,
) -> None:
    client = tenant.client()
    call = ring_in(client, ready_session(client))
    assert command(client, call, "reject").status_code == 200
    is_problem(command(client, call, "accept"), 409, "call_not_active")
    is_problem(command(client, call, "reject"), 409, "call_not_active")
    is_problem(command(client, call, "mute", {"muted": True}), 409, "call_not_active")
    after = snapshot(client, call)
    assert after["state"] == "ended" and after["endReason"] == "rejected"
    assert after["audioMuted"] is False
    assert ended_reasons(call) == ["rejected"]


def test_accepting_an_active_call_again_is_409(tenant: Tenant) -> None:
    client = tenant.client()
    call = ring_in(client, ready_session(client))
    assert command(client, call, "accept").status_code == 200
    is_problem(command(client, call, "accept"), 409, "call_not_ringing")
    is_problem(command(client, call, "reject"), 409, "call_not_ringing")
    assert states_of(call) == ["ringing", "active"]


def test_end_is_idempotent_on_an_ended_call(tenant: Tenant) -> None:
    client = tenant.client()
    call = place(client, ready_session(client), BUSY)
    ended = wait_until_ended(client, call)
    assert ended["endReason"] == "busy"
    for _ in range(2):
        response = command(client, call, "end")
        assert response.status_code == 200, response.content
        assert core(response.json()["data"]) == core(ended)
    assert ended_reasons(call) == ["busy"]


def test_ending_a_ringing_call_stops_it_for_good(
    tenant: Tenant, quick_ring_timeout: float
) -> None:
    client = tenant.client()
    call = place(client, ready_session(client), NO_ANSWER)
    placed = time.monotonic()
    wait_for(state_is(call, "ringing"))
    response = command(client, call, "end")
    assert response.status_code == 200, response.content
    ended = response.json()["data"]
    assert ended["endReason"] == "completed" and ended["answeredAt"] is None
    # Past the ring timeout, which must not fire any more.
    time.sleep(max(0.0, quick_ring_timeout + 0.05 - (time.monotonic() - placed)))
    assert core(snapshot(client, call)) == core(ended)
    assert states_of(call) == ["initiating", "ringing", "ended"]
    assert ended_reasons(call) == ["completed"]


def test_mute_is_reflected_in_the_snapshot_and_announced(tenant: Tenant) -> None:
    client = tenant.client()
    call = place(client, ready_session(client), TALKER)
    wait_for(state_is(call, "active"))
    response = command(client, call, "mute", {"muted": True})
    assert response.status_code == 200, response.content
    assert response.json()["data"]["audioMuted"] is True
    assert response.json()["data"]["state"] == "active"
    assert snapshot(client, call)["audioMuted"] is True
    announced = call_events(call, "call.state")[-1].data["call"]
    assert announced["audioMuted"] is True and announced["state"] == "active"

    response = command(client, call, "mute", {"muted": False})
    assert response.json()["data"]["audioMuted"] is False
    assert call_events(call, "call.state")[-1].data["call"]["audioMuted"] is False


@pytest.mark.parametrize("body", [{}, {"muted": "loud"}], ids=["missing", "not-bool"])
def test_mute_needs_a_boolean(tenant: Tenant, body: dict) -> None:
    client = tenant.client()
    call = place(client, ready_session(client), TALKER)
    wait_for(state_is(call, "active"))
    response = command(client, call, "mute", body)
    assert is_problem(response, 400, "validation_error")["param"] == "muted"
    assert snapshot(client, call)["audioMuted"] is False


def test_unknown_call_is_404(tenant: Tenant) -> None:
    client = tenant.client()
    session_id = ready_session(client)
    missing = "0190a1b2-0000-7000-8000-0000000000ff"
    is_problem(client.get(calls_url(session_id, missing)), 404, "call_not_found")
    is_problem(
        client.post(calls_url(session_id, missing, "/end")), 404, "call_not_found"
    )


# ---------------------------------------------------------------- lists and filters


def test_lists_are_newest_first_and_filter_by_state_and_direction(
    tenant: Tenant,
) -> None:
    client = tenant.client()
    first = ready_session(client)
    second = ready_session(client)
    busy = place(client, first, BUSY)
    talker = place(client, first, TALKER)
    incoming = ring_in(client, second)
    wait_for(state_is(busy, "ended"))
    wait_for(state_is(talker, "active"))
    everything = [incoming["callId"], talker["callId"], busy["callId"]]

    assert listed(client.get(f"{API}/calls")) == everything
    page = client.get(f"{API}/calls", {"limit": 2}).json()
    assert [item["callId"] for item in page["data"]] == everything[:2]
    rest = client.get(f"{API}/calls", {"limit": 2, "cursor": page["nextCursor"]})
    assert listed(rest) == everything[2:]
    assert rest.json()["nextCursor"] is None

    assert listed(client.get(calls_url(first))) == [talker["callId"], busy["callId"]]
    assert listed(client.get(calls_url(second))) == [incoming["callId"]]
    assert listed(client.get(f"{API}/calls", {"state": "ended"})) == [busy["callId"]]
    assert listed(client.get(f"{API}/calls", {"state": "ringing"})) == [
        incoming["callId"]
    ]
    assert listed(client.get(f"{API}/calls", {"direction": "incoming"})) == [
        incoming["callId"]
    ]
    assert listed(client.get(f"{API}/calls", {"direction": "outgoing"})) == [
        talker["callId"],
        busy["callId"],
    ]
    assert listed(
        client.get(calls_url(first), {"state": "active", "direction": "outgoing"})
    ) == [talker["callId"]]
    assert listed(client.get(calls_url(second), {"direction": "outgoing"})) == []


def test_lists_filter_by_creation_time(tenant: Tenant) -> None:
    client = tenant.client()
    session_id = ready_session(client)
    older = place(client, session_id, TALKER)
    time.sleep(0.01)  # the cut-off must fall strictly between the two calls
    cutoff = iso_ms(timezone.now()) or ""
    time.sleep(0.01)
    newer = place(client, session_id, TALKER)
    wait_for(state_is(older, "active"))
    wait_for(state_is(newer, "active"))
    for path in (f"{API}/calls", calls_url(session_id)):
        assert listed(client.get(path, {"createdAfter": cutoff})) == [newer["callId"]]
        assert listed(client.get(path, {"createdBefore": cutoff})) == [older["callId"]]
        window = {"createdAfter": "2020-01-01T00:00:00.000Z", "createdBefore": cutoff}
        assert listed(client.get(path, window)) == [older["callId"]]
        assert listed(client.get(path, {"createdBefore": "2020-01-01T00:00:00Z"})) == []


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("state", "sleeping"),
        ("direction", "sideways"),
        ("createdAfter", "yesterday"),
        ("createdBefore", "2025-13-45"),
    ],
)
def test_bad_filter_values_are_400_problems_naming_the_filter(
    tenant: Tenant, param: str, value: str
) -> None:
    client = tenant.client()
    session_id = ready_session(client)
    for path in (f"{API}/calls", calls_url(session_id)):
        body = is_problem(client.get(path, {param: value}), 400, "validation_error")
        assert body["param"] == param


# ---------------------------------------------------------------- the line goes away


def test_drop_ends_live_calls_session_disconnected(tenant: Tenant) -> None:
    client = tenant.client()
    session_id = ready_session(client)
    talker = place(client, session_id, TALKER)
    incoming = ring_in(client, session_id)
    busy = place(client, session_id, BUSY)
    wait_for(state_is(talker, "active"))
    wait_for(state_is(busy, "ended"))

    response = client.post(f"{API}/test-helpers/sessions/{session_id}/drop")
    assert response.status_code == 200, response.content
    session = response.json()["data"]
    assert session["connectionState"] == "disconnected"
    assert session["connected"] is False and session["paired"] is True
    for call in (talker, incoming):
        after = snapshot(client, call)
        assert after["state"] == "ended"
        assert after["endReason"] == "session_disconnected"
        assert ended_reasons(call) == ["session_disconnected"]
    assert snapshot(client, busy)["endReason"] == "busy"
    assert ended_reasons(busy) == ["busy"]
    # The line is down: no new calls until it reconnects.
    is_problem(
        client.post(calls_url(session_id), {"to": ECHO}, format="json"),
        409,
        "session_not_ready",
    )
    is_problem(
        client.post(f"{API}/test-helpers/sessions/{session_id}/drop"),
        409,
        "session_not_connected",
    )


def test_delete_session_ends_its_live_calls_first(tenant: Tenant) -> None:
    client = tenant.client()
    session_id = ready_session(client)
    other = ready_session(client)
    talker = place(client, session_id, TALKER)
    elsewhere = place(client, other, TALKER)
    wait_for(state_is(talker, "active"))
    wait_for(state_is(elsewhere, "active"))

    assert client.delete(f"{API}/sessions/{session_id}").status_code == 200
    is_problem(client.get(f"{API}/sessions/{session_id}"), 404, "session_not_found")
    ended = next(
        item
        for item in client.get(f"{API}/calls").json()["data"]
        if item["callId"] == talker["callId"]
    )
    assert ended["state"] == "ended"
    assert ended["endReason"] == "session_disconnected"
    types = list(
        Event.objects.filter(session_public_id=session_id)
        .order_by("id")
        .values_list("type", flat=True)
    )
    assert types.index("call.ended") < types.index("session.deleted")
    assert ended_reasons(talker) == ["session_disconnected"]
    assert snapshot(client, elsewhere)["state"] == "active"


# ---------------------------------------------------------------- idempotency


def test_idempotency_key_replays_the_same_call(tenant: Tenant) -> None:
    client = tenant.client()
    session_id = ready_session(client)
    first = client.post(
        calls_url(session_id), {"to": TALKER}, format="json", HTTP_IDEMPOTENCY_KEY="c1"
    )
    again = client.post(
        calls_url(session_id), {"to": TALKER}, format="json", HTTP_IDEMPOTENCY_KEY="c1"
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Call.objects.count() == 1
    other = client.post(
        calls_url(session_id), {"to": ECHO}, format="json", HTTP_IDEMPOTENCY_KEY="c1"
    )
    is_problem(other, 409, "idempotency_key_reused")
    assert Call.objects.count() == 1
    # One call was placed, and it is the one both responses describe.
    call = first.json()["data"]
    wait_for(state_is(call, "active"))
    assert states_of(call) == ["initiating", "ringing", "active"]


# ---------------------------------------------------------------- races


def race(*actions: Callable[[], Any]) -> list[Any]:
    """Run the actions in threads released together; return their results in order."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(index: int, action: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=5)
            results[index] = action()
        except BaseException as exc:  # the test reports it, with the others
            results[index] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(index, action))
        for index, action in enumerate(actions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    for result in results:
        assert not isinstance(result, BaseException), result
    return results


def after(seconds: float, action: Callable[[], Any]) -> Any:
    time.sleep(seconds)
    return action()


def assert_legal_history(call: dict) -> None:
    """At most one end, announced once; states only ever move forward."""
    states = states_of(call)
    order = ["initiating", "ringing", "active", "ended"]
    changes = [
        state for index, state in enumerate(states) if states[:index][-1:] != [state]
    ]
    assert [order.index(state) for state in changes] == sorted(
        order.index(state) for state in changes
    ), states
    assert len(changes) == len(set(changes)), states
    row = Call.objects.get(public_id=call["callId"])
    if row.state == "ended":
        assert ended_reasons(call) == [row.end_reason]
    else:
        assert ended_reasons(call) == []


def test_racing_accepts_answer_the_call_once(tenant: Tenant) -> None:
    owner = tenant.client()
    session_id = ready_session(owner)
    for _ in range(5):
        call = ring_in(owner, session_id)
        first, second = tenant.client(), tenant.client()
        responses = race(
            partial(command, first, call, "accept"),
            partial(command, second, call, "accept"),
        )
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200, 409], [r.content for r in responses]
        winner = next(r for r in responses if r.status_code == 200)
        loser = next(r for r in responses if r.status_code == 409)
        assert winner.json()["data"]["state"] == "active"
        is_problem(loser, 409, "call_not_ringing")
        assert states_of(call) == ["ringing", "active"]
        assert snapshot(owner, call)["state"] == "active"
        assert_legal_history(call)
        command(owner, call, "end")


def test_racing_accept_and_reject_have_one_winner(tenant: Tenant) -> None:
    owner = tenant.client()
    session_id = ready_session(owner)
    for attempt in range(10):
        call = ring_in(owner, session_id)
        accepter, rejecter = tenant.client(), tenant.client()
        # The reject trails by 0-4 ms, so it also lands while the accept is written.
        lag = (attempt % 5) / 1000
        accepted, rejected = race(
            partial(command, accepter, call, "accept"),
            partial(after, lag, partial(command, rejecter, call, "reject")),
        )
        final = snapshot(owner, call)
        outcome = (accepted.status_code, rejected.status_code)
        assert outcome in {(200, 409), (409, 200)}, (outcome, final, states_of(call))
        if accepted.status_code == 200:
            is_problem(rejected, 409, "call_not_ringing")
            assert final["state"] == "active"
            assert states_of(call) == ["ringing", "active"]
            command(owner, call, "end")
        else:
            is_problem(accepted, 409, "call_not_active")
            assert final["state"] == "ended" and final["endReason"] == "rejected"
            assert final["answeredAt"] is None
            assert states_of(call) == ["ringing", "ended"]
        assert_legal_history(call)


def test_ending_while_the_peer_hangs_up_ends_the_call_once(
    tenant: Tenant, settings: Any
) -> None:
    owner = tenant.client()
    session_id = ready_session(owner)
    reasons = set()
    # Hang-up delays around the time an API end takes to arrive after the answer.
    for delay_ms in (0, 5, 10, 20, 30, 50):
        settings.SIM_HANGUP_AFTER_MS = delay_ms
        call = place(owner, session_id, HANGS_UP)
        wait_for(state_is(call, "active", "ended"), interval=0.002)
        response = command(owner, call, "end")
        assert response.status_code == 200, response.content
        data = response.json()["data"]
        assert data["state"] == "ended"
        assert data["endReason"] in {"completed", "remote_hangup"}
        wait_for(partial(call_events, call, "call.ended"))
        time.sleep(0.05)  # a late second end would show up by now
        assert ended_reasons(call) == [data["endReason"]]
        assert core(snapshot(owner, call)) == core(data)
        assert states_of(call) == ["initiating", "ringing", "active", "ended"]
        reasons.add(data["endReason"])
    assert reasons  # at least one outcome; which ones depends on timing


def test_muting_while_ending_leaves_one_legal_outcome(tenant: Tenant) -> None:
    owner = tenant.client()
    session_id = ready_session(owner)
    for _ in range(5):
        call = place(owner, session_id, TALKER)
        wait_for(state_is(call, "active"))
        muter, ender = tenant.client(), tenant.client()
        muted, ended = race(
            partial(command, muter, call, "mute", {"muted": True}),
            partial(command, ender, call, "end"),
        )
        assert ended.status_code == 200, ended.content
        assert ended.json()["data"]["endReason"] == "completed"
        if muted.status_code == 200:
            assert muted.json()["data"]["audioMuted"] is True
            assert muted.json()["data"]["state"] == "active"
        else:
            is_problem(muted, 409, "call_not_active")
        final = snapshot(owner, call)
        assert final["state"] == "ended" and final["endReason"] == "completed"
        assert final["audioMuted"] is (muted.status_code == 200)
        assert ended_reasons(call) == ["completed"]
        assert_legal_history(call)


def test_a_call_answered_as_the_ring_timeout_fires_never_ends_no_answer(
    tenant: Tenant, settings: Any
) -> None:
    owner = tenant.client()
    session_id = ready_session(owner)
    answers_at = (settings.SIM_DIAL_MS + settings.SIM_RING_MS) / 1000
    illegal = []
    # Sweep the ring timeout across the moment the peer answers.
    for offset_ms in range(-2, 13):
        settings.CALL_RING_TIMEOUT_S = answers_at + offset_ms / 1000
        call = place(owner, session_id, ECHO)
        placed = time.monotonic()
        wait_for(state_is(call, "active", "ended"))
        # Both timers have fired by now.
        time.sleep(max(0.0, answers_at + 0.05 - (time.monotonic() - placed)))
        final = snapshot(owner, call)
        if final["state"] == "active":
            command(owner, call, "end")
        elif not (final["endReason"] == "no_answer" and final["answeredAt"] is None):
            illegal.append((offset_ms, final["endReason"], states_of(call)))
        assert_legal_history(call)
    assert illegal == [], "answered calls ended as no_answer"


def test_accepting_as_the_ring_timeout_fires_has_one_legal_outcome(
    tenant: Tenant, settings: Any
) -> None:
    settings.CALL_RING_TIMEOUT_S = 0.1
    owner = tenant.client()
    session_id = ready_session(owner)
    illegal = []

    def accept_after(offset_ms: int) -> bool:
        """Accept ``offset_ms`` after the call rings; return whether it was in time."""
        call = ring_in(owner, session_id)
        rang = time.monotonic()
        time.sleep(max(0.0, offset_ms / 1000 - (time.monotonic() - rang)))
        response = command(owner, call, "accept")
        time.sleep(max(0.0, 0.15 - (time.monotonic() - rang)))
        final = snapshot(owner, call)
        if response.status_code == 200:
            if final["state"] != "active":
                illegal.append((offset_ms, final["endReason"], states_of(call)))
            command(owner, call, "end")
        else:
            is_problem(response, 409, "call_not_active")
            assert final["endReason"] == "missed" and final["answeredAt"] is None
        assert_legal_history(call)
        return response.status_code == 200

    # Find roughly when an accept stops being in time, then sweep closely around it:
    # the accept and the ring timeout then land together.
    late = next(
        (offset for offset in range(40, 121, 8) if not accept_after(offset)), 120
    )
    for offset in range(late - 12, late + 1, 2):
        accept_after(offset)
    assert illegal == [], "accepted calls ended as missed"


# ---------------------------------------------------------------- the hosting engine


def test_a_call_outlasting_the_staleness_window_is_not_reaped(
    tenant: Tenant, settings: Any, engine: Engine
) -> None:
    # The reaper ends, as `failed`, the calls of engines that stopped beating; an engine
    # that is alive must keep beating, or every call it hosts dies at the next pass.
    settings.ENGINE_STALE_AFTER_S = 2
    client = tenant.client()
    call = place(client, ready_session(client), TALKER)
    wait_for(state_is(call, "active"))
    placed = timezone.now()
    wait_for(  # the engine hosting the call beats again
        lambda: EngineHost.objects.filter(
            host_id=engine.host_id, last_seen__gt=placed
        ).exists(),
        timeout=settings.ENGINE_HEARTBEAT_S + 2,
        interval=0.1,
    )
    hosts.reap_orphaned_calls()  # what the periodic reaper runs
    assert snapshot(client, call)["state"] == "active"
    assert ended_reasons(call) == []


def test_a_dead_hosts_call_ends_at_its_last_beat_not_when_it_was_noticed(
    tenant: Tenant, engine: Engine
) -> None:
    """A process dies with a call answered 90 s ago and last beat 60 s ago: the reaper
    ends it ``failed`` with 30 s of duration, not 90."""
    from datetime import timedelta

    client = tenant.client()
    call = place(client, ready_session(client), TALKER)
    wait_for(state_is(call, "active"))
    call_id = call["callId"]
    now = timezone.now()
    EngineHost.objects.create(
        host_id="gone:1:dead",
        hostname="gone",
        pid=1,
        last_seen=now - timedelta(seconds=60),
    )
    # The call as the dead process left it (this engine forgets its runtime first).
    from config import home

    async def forget() -> None:
        engine.runtimes[call_id].drop()

    home.run_sync(forget())
    Call.objects.filter(public_id=call_id).update(
        host="gone:1:dead",
        state="active",
        end_reason="",
        ended_at=None,
        answered_at=now - timedelta(seconds=90),
    )
    assert hosts.reap_orphaned_calls(alive_host=engine.host_id) == 1
    data = snapshot(client, call)
    assert (data["state"], data["endReason"]) == ("ended", "failed")
    assert 29_000 <= data["durationMs"] <= 31_000


def test_an_unknown_list_filter_is_a_400_naming_it(tenant: Tenant) -> None:
    client = tenant.client()
    for url, name in (
        ("/api/v1/calls?sessionId=0190a000-0000-7000-8000-000000000000", "sessionId"),
        ("/api/v1/sessions?state=ended", "state"),
        ("/api/v1/events?cursor=abc", "cursor"),
    ):
        response = client.get(url)
        assert is_problem(response, 400, "unknown_parameter")["param"] == name
    assert client.get("/api/v1/calls?state=ended&limit=5").status_code == 200
