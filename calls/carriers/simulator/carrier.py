"""The simulator's lines: WhatsApp-style linking by QR or pairing code, JID addresses.

What the simulator keeps about a line lives in ``Session.line_state``:
``{"qr", "qrCreatedAt", "pairingCode", "pairingPhone"}`` while it pairs.
"""

from __future__ import annotations

import re
import secrets
import string
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from calls.carriers.base import Carrier, CarrierLeg, LegInfo, LegListener
from calls.carriers.simulator import peers
from calls.models import ConnectionState, Session
from config.errors import Conflict, InvalidRequest
from config.times import iso_ms

if TYPE_CHECKING:
    from collections.abc import Iterable

JID_RE = re.compile(r"^\d{6,15}@s\.whatsapp\.net$")
JID_RULE = "Must be a WhatsApp JID: <digits>@s.whatsapp.net (6 to 15 digits)."


def new_qr_payload() -> str:
    # Shaped like a linked-device QR: ref, public key, identity key, comma separated.
    return ",".join(
        [
            "2@" + secrets.token_urlsafe(24),
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
        ]
    )


def qr_ttl() -> timedelta:
    return timedelta(seconds=settings.SESSION_QR_TTL_S)


def qr_created_at(session: Session) -> datetime | None:
    raw = (session.line_state or {}).get("qrCreatedAt")
    return datetime.fromisoformat(raw) if raw else None


def _require_pairing(session: Session) -> None:
    if session.paired:
        raise Conflict("The session is already paired.", code="session_already_paired")
    if session.connection_state != ConnectionState.CONNECTING:
        raise Conflict(
            "The session is not pairing; POST …/connect first.",
            code="session_not_connecting",
        )


def _qr_event(session: Session) -> tuple[str, dict[str, Any]]:
    from events.models import EventType

    return EventType.AUTH_QR, {
        "qr": session.line_state["qr"],
        "ttlMs": settings.SESSION_QR_TTL_S * 1000,
    }


class SimulatorCarrier(Carrier):
    name = "simulator"
    pairs = True

    def normalize_address(self, to: str) -> str:
        if not isinstance(to, str) or not JID_RE.match(to):
            raise InvalidRequest(JID_RULE, param="to")
        return to

    # ------------------------------------------------------------ line operations
    def connect(self, session: Session) -> list[tuple[str, dict[str, Any]]]:
        session.active = True
        session.last_error = None
        if session.paired:
            session.connection_state = ConnectionState.CONNECTED
            return []
        session.connection_state = ConnectionState.CONNECTING
        session.line_state = {
            "qr": new_qr_payload(),
            "qrCreatedAt": timezone.now().isoformat(),
        }
        return [_qr_event(session)]

    def disconnect(self, session: Session) -> None:
        session.line_state = {}

    def forget(self, session: Session) -> None:
        session.line_state = {}
        session.paired = False
        session.address = ""

    def qr(self, session: Session) -> dict[str, Any]:
        _require_pairing(session)
        session = rotate_qr_if_due(session)
        created = qr_created_at(session)
        assert created is not None
        remaining = created + qr_ttl() - timezone.now()
        return {
            "qr": session.line_state["qr"],
            "ttlMs": max(0, int(remaining.total_seconds() * 1000)),
            "createdAt": iso_ms(created),
        }

    def pairing_code(self, session: Session, phone_number: str) -> str:
        _require_pairing(session)
        letters = "".join(secrets.choice(string.ascii_uppercase) for _ in range(4))
        digits = "".join(secrets.choice(string.digits) for _ in range(4))
        code = f"{letters}-{digits}"
        session.line_state = {
            **session.line_state,
            "pairingCode": code,
            "pairingPhone": phone_number.lstrip("+"),
        }
        return code

    def housekeeping(self) -> None:
        rotate_due_qrs()

    # ------------------------------------------------------------ calls
    async def dial(self, info: LegInfo, listener: LegListener) -> CarrierLeg:
        return peers.dial(listener, info.peer_address)


def rotate_qr_if_due(session: Session) -> Session:
    """Rotate a pairing session's QR when its time is up (once, even if raced)."""
    from calls.services import session_event

    created = qr_created_at(session)
    if session.connection_state != ConnectionState.CONNECTING or created is None:
        return session
    if timezone.now() - created < qr_ttl():
        return session
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        if (
            locked.connection_state != ConnectionState.CONNECTING
            or qr_created_at(locked) != created
        ):
            session.refresh_from_db()
            return session
        locked.line_state = {
            **locked.line_state,
            "qr": new_qr_payload(),
            "qrCreatedAt": timezone.now().isoformat(),
        }
        locked.save(update_fields=["line_state", "updated_at"])
        session.refresh_from_db()
        session_event(session, *_qr_event(session))
    return session


def _pairing_sessions() -> Iterable[Session]:
    return Session.objects.select_related("environment").filter(
        carrier=SimulatorCarrier.name,
        connection_state=ConnectionState.CONNECTING,
        deleted_at__isnull=True,
    )[:500]


def rotate_due_qrs() -> int:
    """Rotate every pairing QR that has expired; return how many rotated."""
    count = 0
    for session in _pairing_sessions():
        before = qr_created_at(session)
        if before is None or timezone.now() - before < qr_ttl():
            continue
        if qr_created_at(rotate_qr_if_due(session)) != before:
            count += 1
    return count
