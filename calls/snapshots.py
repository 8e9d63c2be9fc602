"""The plain-dict snapshots of sessions and calls that events, sockets and replies carry.

Built here, in the app's core, so services and the runtime never need the API layer; the
API's serializers add what only the API shows (a call's recordings).
"""

from __future__ import annotations

from typing import Any

from calls.carriers import get_carrier
from calls.models import Call, Session
from config.times import iso_ms


def session_snapshot(session: Session) -> dict[str, Any]:
    """``{sessionId, displayName, …, carrier, <carrier>: settings, lastError}``."""
    data: dict[str, Any] = {
        "sessionId": str(session.public_id),
        "displayName": session.display_name,
        "deviceBrowser": session.device_browser,
        "status": session.status,
        "paired": session.paired,
        "active": session.active,
        "connected": session.connected,
        "connectionState": session.connection_state,
        "phoneJid": session.address or None,
        "carrier": session.carrier,
        "lastError": session.last_error or None,
        "createdAt": iso_ms(session.created_at),
        "updatedAt": iso_ms(session.updated_at),
        "connectedAt": iso_ms(session.connected_at),
    }
    described = carrier_settings_of(session)
    if described is not None:
        data[session.carrier] = described
    return data


def carrier_settings_of(session: Session) -> dict[str, Any] | None:
    """What the API shows of a session's carrier settings (never a secret)."""
    from calls.credentials import CredentialsUnreadable, unseal

    try:
        driver = get_carrier(session.carrier)
    except LookupError:
        return None
    try:
        secrets = unseal(session.credentials)
    except CredentialsUnreadable:
        secrets = {}
    return driver.describe_settings(
        session.carrier_settings or {}, secrets, str(session.public_id)
    )


def call_snapshot(call: Call) -> dict[str, Any]:
    """The call snapshot of DESIGN §4.2 (plus ``carrier``, ``endDetail``)."""
    return {
        "callId": str(call.public_id),
        "sessionId": str(call.session.public_id),
        "peerJid": call.peer_address,
        "direction": call.direction,
        "mediaType": "audio",
        "state": call.state,
        "endReason": call.end_reason or None,
        "endDetail": call.end_detail or None,
        "carrier": call.session.carrier,
        "transport": call.transport or None,
        "audioMuted": call.audio_muted,
        "record": call.record,
        "createdAt": iso_ms(call.created_at),
        "ringingAt": iso_ms(call.ringing_at),
        "answeredAt": iso_ms(call.answered_at),
        "endedAt": iso_ms(call.ended_at),
        "durationMs": call.duration_ms,
    }
