"""The README's first call, through the SDK: session → connect → scan → call → end."""

from __future__ import annotations

import asyncio

from switchboard_sdk import AsyncSwitchboard, Switchboard

from switchboard_sdk_tests.conftest import ECHO, ready_session


def test_first_call_with_the_sync_client(sb: Switchboard) -> None:
    session = sb.sessions.create("My line", device_browser="sdk tests")
    assert session["connectionState"] == "created" and session["paired"] is False
    session_id = session["sessionId"]

    connecting = sb.sessions.connect(session_id)
    assert connecting["connectionState"] == "connecting"
    qr = sb.sessions.qr(session_id)
    assert qr["qr"] and qr["ttlMs"] > 0 and qr["createdAt"].endswith("Z")

    scanned = sb.test_helpers.scan(session_id)
    assert scanned["paired"] and scanned["connected"] and scanned["status"] == "ready"

    call = sb.calls.place(session_id, ECHO)
    assert call["direction"] == "outgoing" and call["peerJid"] == ECHO
    assert call["state"] in ("initiating", "ringing")
    active = sb.calls.wait(session_id, call["callId"], timeout=10)
    assert active["state"] == "active" and active["answeredAt"]

    ended = sb.calls.end(session_id, call["callId"])
    assert ended["state"] == "ended" and ended["endReason"] == "completed"
    # end is idempotent, and the snapshot says the same afterwards
    assert sb.calls.end(session_id, call["callId"])["endReason"] == "completed"
    assert sb.calls.get(session_id, call["callId"])["state"] == "ended"
    assert [c["callId"] for c in sb.calls.list(session_id)] == [call["callId"]]


def test_first_call_with_the_async_client(async_sb: AsyncSwitchboard) -> None:
    async def scenario() -> None:
        async with async_sb as sb:
            session = await sb.sessions.create("My async line")
            session_id = session["sessionId"]
            await sb.sessions.connect(session_id)
            await sb.test_helpers.scan(session_id)
            assert (await sb.sessions.get(session_id))["status"] == "ready"

            call = await sb.calls.place(session_id, ECHO, record=False)
            assert call["record"] is False
            async with asyncio.timeout(10):
                active = await sb.calls.wait(session_id, call["callId"])
            assert active["state"] == "active"

            muted = await sb.calls.mute(session_id, call["callId"])
            assert muted["audioMuted"] is True
            ended = await sb.calls.end(session_id, call["callId"])
            assert ended["endReason"] == "completed"
            listed = [c["callId"] async for c in sb.calls.list(state="ended")]
            assert listed == [call["callId"]]

    asyncio.run(scenario())


def test_an_idempotency_key_replays_the_first_answer(sb: Switchboard) -> None:
    first = sb.sessions.create("Once", idempotency_key="create-once-1")
    again = sb.sessions.create("Once", idempotency_key="create-once-1")
    assert again["sessionId"] == first["sessionId"]
    assert [s["sessionId"] for s in sb.sessions.list()] == [first["sessionId"]]


def test_a_session_is_renamed_disconnected_and_deleted(sb: Switchboard) -> None:
    session_id = sb.sessions.create("Old name")["sessionId"]
    assert sb.sessions.update(session_id, display_name="New")["displayName"] == "New"
    sb.sessions.connect(session_id)
    sb.test_helpers.scan(session_id)
    assert sb.sessions.disconnect(session_id)["connected"] is False
    deleted = sb.sessions.delete(session_id)
    assert deleted["sessionId"] == session_id
    assert list(sb.sessions.list()) == []


def test_an_incoming_call_is_accepted_then_rejected_calls_stay_ended(
    sb: Switchboard,
) -> None:
    session_id = ready_session(sb)
    ringing = sb.test_helpers.incoming_call(session_id, "15550009999@s.whatsapp.net")
    assert ringing["direction"] == "incoming" and ringing["state"] == "ringing"
    accepted = sb.calls.accept(session_id, ringing["callId"])
    assert accepted["state"] == "active"

    second = sb.test_helpers.incoming_call(session_id, "15550008888@s.whatsapp.net")
    rejected = sb.calls.reject(session_id, second["callId"])
    assert rejected["state"] == "ended" and rejected["endReason"] == "rejected"
    incoming = list(sb.calls.list(session_id, direction="incoming"))
    assert {c["callId"] for c in incoming} == {ringing["callId"], second["callId"]}
