"""The carrier contract: what every driver does, checked through the public API.

Each case runs once per harness (``conftest.py``): the simulator, and a toy driver that
is enabled by settings alone. Real-network carriers join with a harness around their
real peer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from calls.models import Call, CallState
from calls.runtime.engine import Engine
from calls.tests.media_client import MediaClient, chirp, find
from conftest import LiveServer, is_problem
from events.models import Event
from tests.carriers.conftest import Harness, heard_fraction, wait_for

MEDIA_SECONDS = 10.0


def calls_url(session_id: str) -> str:
    return f"/api/v1/sessions/{session_id}/calls"


def place(harness: Harness, session_id: str, outcome: str) -> dict[str, Any]:
    response = harness.client().post(
        calls_url(session_id), {"to": harness.addresses[outcome]}, format="json"
    )
    assert response.status_code == 201, response.content
    return dict(response.json()["data"])


def snapshot(harness: Harness, session_id: str, call_id: str) -> dict[str, Any]:
    response = harness.client().get(f"{calls_url(session_id)}/{call_id}")
    assert response.status_code == 200, response.content
    return dict(response.json()["data"])


def settled(harness: Harness, session_id: str, call_id: str, *states: str) -> Any:
    return wait_for(
        lambda: (
            (data := snapshot(harness, session_id, call_id))["state"] in states and data
        ),
        timeout=10,
    )


def command(harness: Harness, session_id: str, call_id: str, name: str) -> Any:
    return harness.client().post(f"{calls_url(session_id)}/{call_id}/{name}")


def states_of(call_id: str) -> list[str]:
    return [
        event.data["call"]["state"]
        for event in Event.objects.filter(type="call.state").order_by("pk")
        if event.data["callId"] == call_id
    ]


# ---------------------------------------------------------------- dialling out


def test_an_answering_peer_rings_answers_and_the_call_completes(
    harness: Harness, engine: Engine
) -> None:
    session_id = harness.ready_session()
    call = place(harness, session_id, "echo")
    assert call["carrier"] == harness.carrier and call["direction"] == "outgoing"
    assert call["peerJid"] == harness.addresses["echo"]
    settled(harness, session_id, call["callId"], "active")
    ended = command(harness, session_id, call["callId"], "end")
    assert ended.status_code == 200, ended.content
    data = ended.json()["data"]
    assert (data["state"], data["endReason"], data["endDetail"]) == (
        "ended",
        "completed",
        None,
    )
    assert states_of(call["callId"]) == ["initiating", "ringing", "active", "ended"]
    leg = harness.peer_leg(engine, call["callId"])
    assert leg is None or harness.peer_heard_hangup(leg)


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [("busy", "busy"), ("declines", "declined"), ("no_answer", "no_answer")],
)
def test_a_peer_that_does_not_answer_ends_the_call_with_its_reason(
    harness: Harness, outcome: str, reason: str
) -> None:
    if outcome not in harness.addresses:
        pytest.skip(f"the {harness.carrier} network has no {outcome} signal")
    session_id = harness.ready_session(outcome)
    call = place(harness, session_id, outcome)
    data = settled(harness, session_id, call["callId"], "ended")
    assert data["endReason"] == reason
    assert data["answeredAt"] is None and data["durationMs"] == 0


def test_a_network_refusal_is_a_fact_on_the_failed_call(harness: Harness) -> None:
    session_id = harness.ready_session("unreachable")
    call = place(harness, session_id, "unreachable")
    data = settled(harness, session_id, call["callId"], "ended")
    assert data["endReason"] == "failed"
    detail = data["endDetail"]
    assert detail["carrier"] == harness.carrier
    assert detail["code"] and detail["message"]
    ended = Event.objects.filter(type="call.ended").order_by("pk").last()
    assert ended is not None and ended.data["call"]["endDetail"] == detail


def test_the_peer_hanging_up_ends_the_call_remote_hangup(harness: Harness) -> None:
    session_id = harness.ready_session("hangs_up")
    call = place(harness, session_id, "hangs_up")
    settled(harness, session_id, call["callId"], "active")
    data = settled(harness, session_id, call["callId"], "ended")
    assert data["endReason"] == "remote_hangup" and data["durationMs"] > 0


def test_an_address_the_carrier_cannot_call_is_400_naming_to(
    harness: Harness,
) -> None:
    session_id = harness.ready_session()
    response = harness.client().post(
        calls_url(session_id), {"to": "not an address"}, format="json"
    )
    assert is_problem(response, 400, "validation_error")["param"] == "to"
    assert not Call.objects.exists()


# ---------------------------------------------------------------- calls coming in


def test_an_offered_call_rings_announces_itself_and_can_be_accepted(
    harness: Harness, engine: Engine
) -> None:
    session_id = harness.ready_session()
    call_id = harness.call_in(session_id, "echo")
    data = snapshot(harness, session_id, call_id)
    assert (data["state"], data["direction"], data["peerJid"]) == (
        "ringing",
        "incoming",
        harness.caller,
    )
    incoming = Event.objects.get(type="call.incoming")
    assert incoming.data["callId"] == call_id
    accepted = command(harness, session_id, call_id, "accept")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["data"]["state"] == "active"
    ended = command(harness, session_id, call_id, "end").json()["data"]
    assert ended["endReason"] == "completed"
    assert states_of(call_id) == ["ringing", "active", "ended"]


def test_an_offered_call_can_be_rejected(harness: Harness, engine: Engine) -> None:
    session_id = harness.ready_session()
    call_id = harness.call_in(session_id, "echo")
    rejected = command(harness, session_id, call_id, "reject")
    assert rejected.status_code == 200, rejected.content
    assert rejected.json()["data"]["endReason"] == "rejected"
    leg = harness.peer_leg(engine, call_id)
    assert (
        leg is None
        or harness.peer_heard_hangup(leg)
        or "reject" in getattr(leg, "events", ["reject"])
    )


def test_a_caller_who_gives_up_leaves_a_missed_call(harness: Harness) -> None:
    session_id = harness.ready_session()
    call_id = harness.call_in(session_id, "gives_up")
    data = settled(harness, session_id, call_id, "ended")
    assert data["endReason"] == "missed"
    is_problem(command(harness, session_id, call_id, "accept"), 409, "call_not_active")


def test_an_accepted_call_hung_up_by_the_caller_ends_remote_hangup(
    harness: Harness, engine: Engine
) -> None:
    session_id = harness.ready_session()
    call_id = harness.call_in(session_id, "echo")
    command(harness, session_id, call_id, "accept")
    settled(harness, session_id, call_id, "active")
    harness.peer_hangs_up(engine, call_id)
    data = settled(harness, session_id, call_id, "ended")
    assert data["endReason"] == "remote_hangup"


# ---------------------------------------------------------------- media


def test_media_flows_both_ways_for_ten_seconds(
    harness: Harness, asgi_server: LiveServer
) -> None:
    """Ten seconds of a sweep through the live socket come back from the echoing peer:
    sample for sample where the carrier is lossless, by correlation where it is not."""
    session_id = harness.ready_session()
    call = place(harness, session_id, "echo")
    settled(harness, session_id, call["callId"], "active")
    url = f"{asgi_server.ws_url}{calls_url(session_id)}/{call['callId']}/media"
    key = getattr(harness.tenant, f"{harness.environment}_key")
    signal = chirp(MEDIA_SECONDS, amplitude=0.4)

    async def scenario() -> np.ndarray:
        async with MediaClient(url, key) as client:
            await client.wait_for(lambda: client.messages)
            await client.stream(signal)
            if harness.lossless:
                await client.wait_for(
                    lambda: find(client.received(), signal) >= 0, timeout=10
                )
            else:
                await asyncio.sleep(1.0)
            return client.received()

    received = asyncio.run(scenario())
    assert snapshot(harness, session_id, call["callId"])["state"] == "active"
    if harness.lossless:
        start = find(received, signal)
        assert np.array_equal(received[start : start + len(signal)], signal)
    else:
        assert heard_fraction(received, signal) >= 0.9
    command(harness, session_id, call["callId"], "end")


def test_the_snapshot_names_the_transport_attached_now(
    harness: Harness, asgi_server: LiveServer
) -> None:
    session_id = harness.ready_session()
    call = place(harness, session_id, "echo")
    settled(harness, session_id, call["callId"], "active")
    assert snapshot(harness, session_id, call["callId"])["transport"] is None
    url = f"{asgi_server.ws_url}{calls_url(session_id)}/{call['callId']}/media"
    key = getattr(harness.tenant, f"{harness.environment}_key")

    async def attached() -> None:
        async with MediaClient(url, key) as client:
            await client.wait_for(lambda: client.audio)
            await asyncio.to_thread(
                wait_for,
                lambda: (
                    snapshot(harness, session_id, call["callId"])["transport"]
                    == "websocket"
                ),
            )

    asyncio.run(attached())
    wait_for(lambda: snapshot(harness, session_id, call["callId"])["transport"] is None)
    assert Call.objects.get(public_id=call["callId"]).state == CallState.ACTIVE
    command(harness, session_id, call["callId"], "end")
