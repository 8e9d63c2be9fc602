"""Writes for sessions and calls. Call state changes are atomic conditional updates."""

from __future__ import annotations

import secrets
import string
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Environment
from calls import state as sm
from calls.api.serializers import call_snapshot, session_snapshot
from calls.models import Call, CallState, ConnectionState, Direction, EndReason, Session
from config.api.errors import Conflict
from events.models import EventType
from events.services import event_emit

# ---------------------------------------------------------------- sessions


def _emit_session(session: Session, type: str, data: dict | None = None) -> None:
    event_emit(
        environment=session.environment,
        type=type,
        data=data if data is not None else {"session": session_snapshot(session)},
        session_public_id=session.public_id,
    )


def _emit_connection_state(session: Session) -> None:
    _emit_session(
        session,
        EventType.CONNECTION_STATE,
        {
            "connectionState": session.connection_state,
            "connected": session.connected,
            "paired": session.paired,
        },
    )


def _new_qr_payload() -> str:
    # Shaped like a linked-device QR: ref, public key, identity key, comma separated.
    return ",".join(
        [
            "2@" + secrets.token_urlsafe(24),
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
        ]
    )


@transaction.atomic
def session_create(
    *, environment: Environment, display_name: str, device_browser: str = ""
) -> Session:
    """Create a session (a line to be linked) in an environment."""
    session = Session.objects.create(
        environment=environment,
        display_name=display_name,
        device_browser=device_browser,
        carrier="simulator" if environment.is_test else settings.LIVE_CARRIER,
    )
    _emit_session(session, EventType.SESSION_CREATED)
    return session


def _locked(session: Session) -> Session:
    return (
        Session.objects.select_for_update()
        .select_related("environment")
        .get(pk=session.pk)
    )


def _require_alive(session: Session) -> None:
    if session.deleted_at is not None:
        raise Conflict("The session has been deleted.", code="session_deleted")


@transaction.atomic
def session_connect(*, session: Session) -> Session:
    """Start pairing, or reconnect a paired session without a new QR."""
    session = _locked(session)
    _require_alive(session)
    now = timezone.now()
    if session.connection_state in (
        ConnectionState.CONNECTED,
        ConnectionState.CONNECTING,
    ):
        return session
    session.active = True
    if session.paired:
        session.connection_state = ConnectionState.CONNECTED
        session.connected_at = now
        session.save()
        _emit_connection_state(session)
        return session
    session.connection_state = ConnectionState.CONNECTING
    session.qr_payload = _new_qr_payload()
    session.qr_created_at = now
    session.pairing_code = ""
    session.save()
    _emit_connection_state(session)
    _emit_qr(session)
    return session


def _emit_qr(session: Session) -> None:
    _emit_session(
        session,
        EventType.AUTH_QR,
        {"qr": session.qr_payload, "ttlMs": settings.SESSION_QR_TTL_S * 1000},
    )


def qr_ttl() -> timedelta:
    return timedelta(seconds=settings.SESSION_QR_TTL_S)


def session_qr_rotate_if_due(*, session: Session) -> Session:
    """Rotate a pairing session's QR when its time is up (once, even if raced)."""
    if (
        session.connection_state != ConnectionState.CONNECTING
        or session.qr_created_at is None
    ):
        return session
    now = timezone.now()
    if now - session.qr_created_at < qr_ttl():
        return session
    with transaction.atomic():
        payload = _new_qr_payload()
        rotated = Session.objects.filter(
            pk=session.pk,
            connection_state=ConnectionState.CONNECTING,
            qr_created_at=session.qr_created_at,
        ).update(qr_payload=payload, qr_created_at=now, updated_at=now)
        session.refresh_from_db()
        if rotated:
            _emit_qr(session)
    return session


def sessions_rotate_due_qrs() -> int:
    """Rotate every pairing QR that has expired; return how many rotated."""
    cutoff = timezone.now() - qr_ttl()
    due = Session.objects.select_related("environment").filter(
        connection_state=ConnectionState.CONNECTING, qr_created_at__lte=cutoff
    )[:500]
    count = 0
    for session in due:
        before = session.qr_created_at
        if session_qr_rotate_if_due(session=session).qr_created_at != before:
            count += 1
    return count


def session_current_qr(*, session: Session) -> Session:
    """Return the session with a current QR; 409 if it is paired or not pairing."""
    if session.paired:
        raise Conflict("The session is already paired.", code="session_already_paired")
    if session.connection_state != ConnectionState.CONNECTING:
        raise Conflict(
            "The session is not pairing; POST …/connect first.",
            code="session_not_connecting",
        )
    return session_qr_rotate_if_due(session=session)


@transaction.atomic
def session_pairing_code(*, session: Session, phone_number: str) -> str:
    """Issue a pairing code (``ABCD-1234``) for linking by phone number."""
    session = _locked(session)
    if session.paired:
        raise Conflict("The session is already paired.", code="session_already_paired")
    if session.connection_state != ConnectionState.CONNECTING:
        raise Conflict(
            "The session is not pairing; POST …/connect first.",
            code="session_not_connecting",
        )
    letters = "".join(secrets.choice(string.ascii_uppercase) for _ in range(4))
    digits = "".join(secrets.choice(string.digits) for _ in range(4))
    session.pairing_code = f"{letters}-{digits}"
    session.pairing_phone = phone_number.lstrip("+")
    session.save()
    return session.pairing_code


@transaction.atomic
def session_pair_complete(*, session: Session) -> Session:
    """The (simulated) phone scanned the QR or entered the code: the line is linked."""
    session = _locked(session)
    _require_alive(session)
    if session.paired:
        raise Conflict("The session is already paired.", code="session_already_paired")
    if session.connection_state != ConnectionState.CONNECTING:
        raise Conflict(
            "The session is not pairing; POST …/connect first.",
            code="session_not_connecting",
        )
    digits = session.pairing_phone or "1555" + "".join(
        secrets.choice(string.digits) for _ in range(7)
    )
    now = timezone.now()
    session.paired = True
    session.active = True
    session.phone_jid = f"{digits}@s.whatsapp.net"
    session.connection_state = ConnectionState.CONNECTED
    session.connected_at = now
    session.qr_payload = ""
    session.qr_created_at = None
    session.pairing_code = ""
    session.save()
    _emit_session(session, EventType.AUTH_PAIRED, {"phoneJid": session.phone_jid})
    _emit_connection_state(session)
    return session


def _session_go_offline(
    session: Session, *, forget: bool = False, delete: bool = False
) -> Session:
    from calls.runtime import control  # the runtime imports services: import late

    control.end_calls_of_session(session, reason=EndReason.SESSION_DISCONNECTED)
    with transaction.atomic():
        session = _locked(session)
        was = session.connection_state
        session.active = False
        if session.connection_state != ConnectionState.CREATED or session.paired:
            session.connection_state = ConnectionState.DISCONNECTED
        session.qr_payload = ""
        session.qr_created_at = None
        session.pairing_code = ""
        if forget:
            session.paired = False
            session.phone_jid = ""
        if delete:
            session.deleted_at = timezone.now()
        session.save()
        if forget:
            _emit_session(session, EventType.AUTH_LOGGED_OUT, {})
        if session.connection_state != was:
            _emit_connection_state(session)
        if delete:
            _emit_session(session, EventType.SESSION_DELETED)
    return session


def session_disconnect(*, session: Session) -> Session:
    """Disconnect the line, keeping its credentials (reconnect needs no QR)."""
    _require_alive(session)
    return _session_go_offline(session)


def session_logout(*, session: Session) -> Session:
    """Unlink the line: credentials are forgotten and ``paired`` becomes false."""
    _require_alive(session)
    return _session_go_offline(session, forget=True)


def session_drop(*, session: Session) -> Session:
    """The line drops (test helper): live calls end ``session_disconnected``."""
    _require_alive(session)
    if not session.connected:
        raise Conflict("The session is not connected.", code="session_not_connected")
    return _session_go_offline(session)


def session_delete(*, session: Session) -> Session:
    """Delete a session after ending its live calls; its call history stays."""
    _require_alive(session)
    return _session_go_offline(session, forget=True, delete=True)


# ---------------------------------------------------------------- calls


def _require_ready(session: Session) -> None:
    _require_alive(session)
    if not (session.paired and session.connected):
        raise Conflict(
            "The session must be paired and connected to make or receive calls.",
            code="session_not_ready",
        )


def _emit_call(call: Call, type: str, extra: dict | None = None) -> None:
    snapshot = call_snapshot(call)
    data = {"callId": snapshot["callId"], "call": snapshot, **(extra or {})}
    event_emit(
        environment=call.environment,
        type=type,
        data=data,
        session_public_id=call.session.public_id,
    )


@transaction.atomic
def call_create(
    *,
    session: Session,
    peer_jid: str,
    direction: str,
    host: str,
    record: bool | None = None,
    behavior: str = "",
) -> Call:
    """Create a call row (outgoing: initiating; incoming: ringing) hosted by ``host``."""
    session = _locked(session)
    _require_ready(session)
    now = timezone.now()
    incoming = direction == Direction.INCOMING
    call = Call.objects.create(
        environment=session.environment,
        session=session,
        peer_jid=peer_jid,
        direction=direction,
        state=CallState.RINGING if incoming else CallState.INITIATING,
        ringing_at=now if incoming else None,
        record=session.environment.record_calls if record is None else record,
        behavior=behavior,
        host=host,
    )
    if incoming:
        _emit_call(call, EventType.CALL_INCOMING)
    _emit_call(call, EventType.CALL_STATE)
    return call


def call_transition(
    *,
    call_id: int,
    to: str,
    end_reason: str = "",
    only_from: frozenset[str] | None = None,
) -> Call | None:
    """Move a call to ``to`` if the state machine allows it now; None if it lost a race.

    ``only_from`` narrows the allowed current states (a rejection or a ring timeout may
    only end a call that is still ringing, never one that was answered meanwhile).
    """
    sources = sm.sources_of(to) if only_from is None else sm.sources_of(to) & only_from
    now = timezone.now()
    changes: dict[str, object] = {"state": to, "updated_at": now}
    if to == CallState.RINGING:
        changes["ringing_at"] = now
    elif to == CallState.ACTIVE:
        changes["answered_at"] = now
    elif to == CallState.ENDED:
        changes["ended_at"] = now
        changes["end_reason"] = end_reason or EndReason.COMPLETED
    with transaction.atomic():
        moved = Call.objects.filter(pk=call_id, state__in=sources).update(**changes)
        if not moved:
            return None
        call = Call.objects.select_related("environment", "session").get(pk=call_id)
        _emit_call(call, EventType.CALL_STATE)
        if to == CallState.ENDED:
            _emit_call(call, EventType.CALL_ENDED, {"endReason": call.end_reason})
    return call


def call_set_muted(*, call_id: int, muted: bool) -> Call | None:
    """Mute or unmute a live call; None if the call has ended."""
    with transaction.atomic():
        changed = (
            Call.objects.filter(pk=call_id)
            .exclude(state=CallState.ENDED)
            .update(audio_muted=muted, updated_at=timezone.now())
        )
        if not changed:
            return None
        call = Call.objects.select_related("environment", "session").get(pk=call_id)
        _emit_call(call, EventType.CALL_STATE)
    return call
