"""The synchronous face of the engine, for REST views, services, admin actions and tasks.

Each function is one operation on a call, typed; it runs where the call's runtime lives
(this process, or the hosting process over the channel layer). Apps that teach the engine
commands of their own (playback, streams) wrap ``run_command`` in typed services the same
way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from calls import services
from calls.carriers.base import CarrierLeg
from calls.models import Call, CallState, Direction, EndReason, Session
from calls.runtime import hooks
from calls.runtime.engine import Engine, current_engine, ensure_engine
from config import home
from config.errors import Conflict


def engine() -> Engine:
    """This process's engine (started on the home loop the first time)."""
    return current_engine() or home.run_sync(ensure_engine())


def _timeout() -> float:
    return settings.CALL_COMMAND_TIMEOUT_S + 5


@dataclass
class Placed:
    """A call just placed or accepted, with the dial-out streams started with it."""

    call: Call
    streams: list[Any] = field(default_factory=list)


def call_place(
    *,
    session: Session,
    to: str,
    record: bool | None = None,
    streams: Sequence[dict[str, Any]] = (),
) -> Placed:
    """Place an outgoing call, with dial-out streams to start once it is answered.

    A call hosted here returns as soon as its row is written: dialling starts on the
    home loop without the request waiting for it (the call is ``initiating``; a carrier
    that refuses ends it ``failed`` a moment later, told by events). A call placed in
    another process, or with streams, returns once dialling has started there.

    ``to`` is checked and normalised by the session's carrier (400 naming ``to``).
    """
    carrier = services.carrier_of(session)
    peer = carrier.normalize_address(to)
    extension = hooks.streams_extension()
    if streams:
        extension.precheck(None, list(streams))
    local = engine()
    host = local.host_id
    if carrier.holds_lines:
        # The call lives in the process that holds its line (its registration, its
        # SIP listener): placed there, over the channel layer, when that is not here.
        session.refresh_from_db(fields=["line_holder"])
        host = session.line_holder or host
    here = host == local.host_id
    if here:
        local.admit()  # before any row is written: a full process refuses (503)
    try:
        call = services.call_create(
            session=session,
            peer_address=peer,
            direction=Direction.OUTGOING,
            host=host,
            record=record,
        )
    except BaseException:
        if here:
            local.release()
        raise
    if here and not streams:
        home.submit(local.start_call(call.pk, admitted=True))
        return Placed(call=call)
    if here:
        home.run_sync(local.start_call(call.pk, admitted=True), timeout=_timeout())
    else:
        home.run_sync(
            local.start_call_on(host, call.pk, str(call.public_id), carrier.name),
            timeout=_timeout(),
        )
    created = extension.add(call, list(streams), allow_ended=True) if streams else []
    call.refresh_from_db()
    return Placed(call=call, streams=created)


def offer_incoming_from(
    *, session: Session, from_address: str, make_leg: Callable[[], CarrierLeg]
) -> Call:
    """A call reaches the session from the network: it rings in this process.

    ``make_leg`` builds the carrier leg on the home loop (drivers already there call
    ``calls.carriers.offer_incoming`` instead).
    """
    local = engine()

    async def offer() -> dict[str, Any]:
        return await local.offer_incoming(
            str(session.public_id), from_address, make_leg()
        )

    snapshot = home.run_sync(offer(), timeout=_timeout())
    return Call.objects.select_related("session", "environment").get(
        public_id=snapshot["callId"]
    )


def run_command(call: Call, name: str, **args: Any) -> dict[str, Any]:
    """Run a registered engine command where the call's runtime lives."""
    local = engine()
    return home.run_sync(
        local.command(str(call.public_id), call.host, name, args), timeout=_timeout()
    )


def call_end(call: Call, *, reason: str = EndReason.COMPLETED) -> dict[str, Any]:
    """Hang up (idempotent on an ended call); returns the snapshot."""
    return run_command(call, "end", reason=reason)


def call_accept(call: Call, *, streams: Sequence[dict[str, Any]] = ()) -> Placed:
    """Answer a ringing incoming call, starting dial-out streams with it."""
    extension = hooks.streams_extension()
    if streams:
        extension.precheck(call, list(streams))
    run_command(call, "accept")
    created = extension.add(call, list(streams)) if streams else []
    call.refresh_from_db()
    return Placed(call=call, streams=created)


def call_reject(call: Call) -> dict[str, Any]:
    """Refuse a ringing incoming call."""
    return run_command(call, "reject")


def call_send_dtmf(call: Call, *, digits: str) -> dict[str, Any]:
    """Send DTMF digits to the peer (409 where the carrier has no DTMF)."""
    return run_command(call, "dtmf", digits=digits)


def call_mute(call: Call, *, muted: bool) -> dict[str, Any]:
    """Mute or unmute: while muted the peer hears silence."""
    return run_command(call, "mute", muted=muted)


# ---------------------------------------------------------------- lines going away
# Their live calls end first (``session_disconnected``), then the line goes offline.


def session_disconnect(*, session: Session) -> Session:
    """Disconnect the line, keeping its credentials (reconnecting needs no pairing)."""
    services.require_alive(session)
    end_calls_of_session(session, reason=EndReason.SESSION_DISCONNECTED)
    return services.session_go_offline(session=session)


def session_logout(*, session: Session) -> Session:
    """Unlink the line: what pairing produced is forgotten."""
    services.require_alive(session)
    end_calls_of_session(session, reason=EndReason.SESSION_DISCONNECTED)
    return services.session_go_offline(session=session, forget=True)


def session_line_lost(*, session: Session) -> Session:
    """The line dropped: live calls end ``session_disconnected``."""
    services.require_alive(session)
    if not session.connected:
        raise Conflict("The session is not connected.", code="session_not_connected")
    end_calls_of_session(session, reason=EndReason.SESSION_DISCONNECTED)
    return services.session_go_offline(session=session)


def session_delete(*, session: Session) -> Session:
    """Delete a session after ending its live calls; its call history stays."""
    services.require_alive(session)
    end_calls_of_session(session, reason=EndReason.SESSION_DISCONNECTED)
    return services.session_go_offline(session=session, forget=True, delete=True)


def end_calls_of_session(session: Session, *, reason: str) -> int:
    """End every live call of a session (used when the line goes away)."""
    live = list(Call.objects.filter(session=session).exclude(state=CallState.ENDED))
    for call in live:
        call_end(call, reason=reason)
    return len(live)
