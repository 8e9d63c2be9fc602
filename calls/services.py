"""Writes for sessions and calls. Call state changes are atomic conditional updates.

What a line does on its network is its carrier's business (``calls/carriers/``): these
services lock the row, ask the session's driver, save, and tell (events).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Environment
from calls import state as sm
from calls.carriers import carriers_for, get_carrier
from calls.carriers.base import Carrier
from calls.credentials import reseal, seal, unseal
from calls.models import Call, CallState, ConnectionState, Direction, EndReason, Session
from calls.snapshots import call_snapshot, session_snapshot
from config.errors import Conflict, InvalidRequest
from events.models import EventType
from events.services import event_emit

# ---------------------------------------------------------------- sessions


def session_event(session: Session, type: str, data: dict | None = None) -> None:
    """Write an event about a session (in the caller's transaction)."""
    event_emit(
        environment=session.environment,
        type=type,
        data=data if data is not None else {"session": session_snapshot(session)},
        session_public_id=session.public_id,
    )


def announce_connection_state(session: Session) -> None:
    session_event(
        session,
        EventType.CONNECTION_STATE,
        {
            "connectionState": session.connection_state,
            "connected": session.connected,
            "paired": session.paired,
        },
    )


def carrier_of(session: Session) -> Carrier:
    return get_carrier(session.carrier)


def _choose_carrier(environment: Environment, name: str | None) -> Carrier:
    allowed = carriers_for(environment)
    if name is None:
        name = allowed[0]
    if name not in allowed:
        where = "test" if environment.is_test else "live"
        raise InvalidRequest(
            f"Carrier {name!r} is not available in {where} environments; "
            f"choose one of: {', '.join(allowed)}.",
            code="carrier_not_available",
            param="carrier",
        )
    return get_carrier(name)


@transaction.atomic
def session_create(
    *,
    environment: Environment,
    display_name: str,
    device_browser: str = "",
    carrier: str | None = None,
    carrier_settings: Mapping[str, Any] | None = None,
) -> Session:
    """Create a session (a line to be linked or connected) in an environment."""
    driver = _choose_carrier(environment, carrier)
    shown, secrets = driver.validate_settings(carrier_settings)
    session = Session.objects.create(
        environment=environment,
        display_name=display_name,
        device_browser=device_browser,
        carrier=driver.name,
        carrier_settings=shown,
        credentials=seal(secrets),
        # Carriers that do not pair are usable as soon as they connect.
        paired=not driver.pairs,
    )
    session_event(session, EventType.SESSION_CREATED)
    return session


@transaction.atomic
def session_update(
    *,
    session: Session,
    display_name: str | None = None,
    device_browser: str | None = None,
    carrier_settings: Mapping[str, Any] | None = None,
) -> Session:
    """Rename a session or change its carrier settings (omitted fields keep theirs).

    New settings on a line that is up bring it up again with them.
    """
    session = session_locked(session)
    require_alive(session)
    if display_name is not None:
        session.display_name = display_name
    if device_browser is not None:
        session.device_browser = device_browser
    if carrier_settings is not None:
        driver = carrier_of(session)
        shown, secrets = driver.validate_settings(
            carrier_settings,
            current=session.carrier_settings,
            current_secrets=unseal(session.credentials),
        )
        session.carrier_settings = shown
        session.credentials = seal(secrets)
        if driver.holds_lines:
            generation = int(session.line_state.get("generation", 0)) + 1
            session.line_state = {**session.line_state, "generation": generation}
            if session.active:
                was = session.connection_state
                session.connection_state = ConnectionState.CONNECTING
                session.save()
                if was != session.connection_state:
                    announce_connection_state(session)
                return session
    session.save()
    return session


def sessions_reseal_credentials(
    *, batch: int = 200, progress: Callable[[int], None] | None = None
) -> int:
    """Re-encrypt every session's credentials with the first key; return how many."""
    done = 0
    last = 0
    while True:
        ids = list(
            Session.objects.filter(pk__gt=last)
            .exclude(credentials="")
            .order_by("pk")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return done
        with transaction.atomic():
            for session in Session.objects.select_for_update().filter(pk__in=ids):
                session.credentials = reseal(session.credentials)
                session.save(update_fields=["credentials"])
        done += len(ids)
        last = ids[-1]
        if progress is not None:
            progress(done)


def session_locked(session: Session) -> Session:
    return (
        Session.objects.select_for_update()
        .select_related("environment")
        .get(pk=session.pk)
    )


def require_alive(session: Session) -> None:
    if session.deleted_at is not None:
        raise Conflict("The session has been deleted.", code="session_deleted")


@transaction.atomic
def session_connect(*, session: Session) -> Session:
    """Bring the line up: pairing for carriers that pair, else connecting or connected."""
    session = session_locked(session)
    require_alive(session)
    if session.connection_state in (
        ConnectionState.CONNECTED,
        ConnectionState.CONNECTING,
    ):
        return session
    follow_ups = carrier_of(session).connect(session)
    if session.connection_state == ConnectionState.CONNECTED:
        session.connected_at = timezone.now()
    session.save()
    announce_connection_state(session)
    for type, data in follow_ups:
        session_event(session, type, data)
    return session


def session_current_qr(*, session: Session) -> dict[str, Any]:
    """The current pairing QR ``{qr, ttlMs, createdAt}``; 409 if not pairing."""
    require_alive(session)
    return carrier_of(session).qr(session)


@transaction.atomic
def session_pairing_code(*, session: Session, phone_number: str) -> str:
    """Issue a pairing code (``ABCD-1234``) for linking by phone number."""
    session = session_locked(session)
    require_alive(session)
    code = carrier_of(session).pairing_code(session, phone_number)
    session.save()
    return code


def session_go_offline(
    *, session: Session, forget: bool = False, delete: bool = False
) -> Session:
    """Take the line offline once its calls have ended (``calls.runtime.control`` ends
    them first): disconnected; ``forget`` unlinks it, ``delete`` deletes the session."""
    with transaction.atomic():
        session = session_locked(session)
        driver = carrier_of(session)
        was = session.connection_state
        session.active = False
        if session.connection_state != ConnectionState.CREATED or session.paired:
            session.connection_state = ConnectionState.DISCONNECTED
        driver.disconnect(session)
        if forget:
            driver.forget(session)
        if delete:
            session.deleted_at = timezone.now()
        session.save()
        if forget:
            session_event(session, EventType.AUTH_LOGGED_OUT, {})
        if session.connection_state != was:
            announce_connection_state(session)
        if delete:
            session_event(session, EventType.SESSION_DELETED)
    return session


# ---------------------------------------------------------------- calls


def _require_ready(session: Session) -> None:
    require_alive(session)
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
    peer_address: str,
    direction: str,
    host: str,
    record: bool | None = None,
) -> Call:
    """Create a call row (outgoing: initiating; incoming: ringing) hosted by ``host``."""
    session = session_locked(session)
    _require_ready(session)
    now = timezone.now()
    incoming = direction == Direction.INCOMING
    call = Call.objects.create(
        environment=session.environment,
        session=session,
        peer_address=peer_address,
        direction=direction,
        state=CallState.RINGING if incoming else CallState.INITIATING,
        ringing_at=now if incoming else None,
        record=session.environment.record_calls if record is None else record,
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
    end_detail: dict[str, str] | None = None,
    ended_at: datetime | None = None,
) -> Call | None:
    """Move a call to ``to`` if the state machine allows it now; None if it lost a race.

    ``only_from`` narrows the allowed current states (a rejection or a ring timeout may
    only end a call that is still ringing, never one that was answered meanwhile).
    ``ended_at`` backdates an end (a dead host's call ended when it last beat).
    """
    sources = sm.sources_of(to) if only_from is None else sm.sources_of(to) & only_from
    now = timezone.now()
    changes: dict[str, object] = {"state": to, "updated_at": now}
    if to == CallState.RINGING:
        changes["ringing_at"] = now
    elif to == CallState.ACTIVE:
        changes["answered_at"] = now
    elif to == CallState.ENDED:
        changes["ended_at"] = min(ended_at, now) if ended_at is not None else now
        changes["end_reason"] = end_reason or EndReason.COMPLETED
        if end_detail:
            changes["end_detail"] = end_detail
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


def call_dtmf_received(*, call_id: int, digit: str, duration_ms: int) -> None:
    """Tell of a key the peer pressed: ``call.dtmf {callId, digit, durationMs}``."""
    call = Call.objects.select_related("environment", "session").get(pk=call_id)
    event_emit(
        environment=call.environment,
        type=EventType.CALL_DTMF,
        data={
            "callId": str(call.public_id),
            "digit": digit,
            "durationMs": duration_ms,
        },
        session_public_id=call.session.public_id,
    )


def call_set_transport(*, call_id: int, transport: str) -> None:
    """Record which client transport is attached to a live call now (blank: none)."""
    Call.objects.filter(pk=call_id).exclude(state=CallState.ENDED).update(
        transport=transport
    )
