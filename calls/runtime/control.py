"""The synchronous face of the engine, for REST views, services, admin actions and tasks."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from calls import services
from calls.models import Call, CallState, Direction, Session
from calls.runtime.engine import Engine, ensure_engine
from config import home


def engine() -> Engine:
    return home.run_sync(ensure_engine())


def _timeout() -> float:
    return settings.CALL_COMMAND_TIMEOUT_S + 5


def call_place(*, session: Session, to: str, record: bool | None) -> Call:
    """Place an outgoing call hosted by this process; returns it once dialling started."""
    local = engine()
    call = services.call_create(
        session=session,
        peer_jid=to,
        direction=Direction.OUTGOING,
        host=local.host_id,
        record=record,
    )
    home.run_sync(local.start_call(call.pk), timeout=_timeout())
    return call


def call_offer_incoming(*, session: Session, from_jid: str, behavior: str) -> Call:
    """A (simulated) peer calls the session: the call rings here."""
    local = engine()
    call = services.call_create(
        session=session,
        peer_jid=from_jid,
        direction=Direction.INCOMING,
        host=local.host_id,
        behavior=behavior,
    )
    home.run_sync(local.start_call(call.pk), timeout=_timeout())
    return call


def call_command(call: Call, name: str, **args: Any) -> dict[str, Any]:
    """Run ``end``/``accept``/``reject``/``mute`` where the call's runtime lives."""
    local = engine()
    return home.run_sync(
        local.command(str(call.public_id), call.host, name, args), timeout=_timeout()
    )


def end_calls_of_session(session: Session, *, reason: str) -> int:
    """End every live call of a session (used when the line goes away)."""
    live = list(Call.objects.filter(session=session).exclude(state=CallState.ENDED))
    for call in live:
        call_command(call, "end", reason=reason)
    return len(live)
