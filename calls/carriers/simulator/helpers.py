"""What the test helpers make the simulated network do (DESIGN §4.3)."""

from __future__ import annotations

import secrets
import string

from django.db import transaction
from django.utils import timezone

from calls.carriers.simulator import peers
from calls.models import Call, ConnectionState, Session
from config.errors import Conflict


def scan(session: Session) -> Session:
    """The simulated phone scans the QR or enters the code: the line is linked."""
    from calls import services
    from events.models import EventType

    with transaction.atomic():
        session = services.session_locked(session)
        services.require_alive(session)
        if session.paired:
            raise Conflict(
                "The session is already paired.", code="session_already_paired"
            )
        if session.connection_state != ConnectionState.CONNECTING:
            raise Conflict(
                "The session is not pairing; POST …/connect first.",
                code="session_not_connecting",
            )
        digits = (session.line_state or {}).get("pairingPhone") or "1555" + "".join(
            secrets.choice(string.digits) for _ in range(7)
        )
        session.paired = True
        session.active = True
        session.address = f"{digits}@s.whatsapp.net"
        session.connection_state = ConnectionState.CONNECTED
        session.connected_at = timezone.now()
        session.line_state = {}
        session.save()
        services.session_event(
            session, EventType.AUTH_PAIRED, {"phoneJid": session.address}
        )
        services.announce_connection_state(session)
    return session


def ring(session: Session, *, from_address: str, behavior: str) -> Call:
    """A simulated peer calls the session: the call rings in this process."""
    from calls.runtime import control

    return control.offer_incoming_from(
        session=session,
        from_address=from_address,
        make_leg=lambda: peers.caller(behavior),
    )
