"""Lines with a network presence: which process holds each, and what the network said.

A carrier with ``holds_lines`` (a SIP trunk's registration, say) must be up in exactly
one process per connected line, or two processes would register the same trunk. The
holder is recorded on the session under a lease (``line_holder``, ``line_lease_until``):
the engine of a process allowed to hold lines (``SWITCHBOARD_HOSTS_LINES``) takes every
free or lapsed lease of an active line once a second, renews its own, and lets go of lines
that were disconnected. A holder that dies stops renewing; ``LINE_LEASE_S`` later another
process takes the line over. The driver reports the network's answer with
``line_connected`` and ``line_failed`` (errors are facts: ``lastError`` on the session).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from calls.carriers.base import LineInfo
from calls.credentials import CredentialsUnreadable, unseal
from calls.models import ConnectionState, Session
from config.times import iso_ms

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldLine:
    carrier: str
    info: LineInfo
    generation: int


def _lease_until() -> object:
    return timezone.now() + timedelta(seconds=settings.LINE_LEASE_S)


def _wanted(carriers: list[str]) -> Q:
    return Q(carrier__in=carriers, active=True, deleted_at__isnull=True)


def lines_claim(host_id: str, carriers: list[str]) -> list[HeldLine]:
    """Take (or keep) the lease of every active line of these carriers that is free,
    lapsed or already ours; return the lines this host holds now."""
    now = timezone.now()
    until = _lease_until()
    free = Q(line_holder="") | Q(line_lease_until__lt=now) | Q(line_holder=host_id)
    Session.objects.filter(_wanted(carriers) & free).update(
        line_holder=host_id, line_lease_until=until
    )
    held = Session.objects.select_related("environment").filter(
        _wanted(carriers), line_holder=host_id
    )
    lines = []
    for session in held:
        try:
            secrets = unseal(session.credentials)
        except CredentialsUnreadable as exc:
            line_failed(str(session.public_id), "credentials_unreadable", str(exc))
            continue
        lines.append(
            HeldLine(
                carrier=session.carrier,
                info=LineInfo(
                    session_id=str(session.public_id),
                    environment_id=str(session.environment.public_id),
                    address=session.address,
                    settings=dict(session.carrier_settings or {}),
                    secrets=secrets,
                ),
                generation=int((session.line_state or {}).get("generation", 0)),
            )
        )
    return lines


def lines_release(host_id: str, session_ids: list[str] | None = None) -> int:
    """Let go of these lines' leases (all of this host's when None)."""
    held = Session.objects.filter(line_holder=host_id)
    if session_ids is not None:
        held = held.filter(public_id__in=session_ids)
    return held.update(line_holder="", line_lease_until=None)


def _report(session_id: str, state: str, error: dict[str, str] | None) -> bool:
    from calls import services

    with transaction.atomic():
        session = (
            Session.objects.select_for_update()
            .select_related("environment")
            .filter(public_id=session_id, deleted_at__isnull=True)
            .first()
        )
        if session is None or not session.active:
            return False
        before = session.last_error or {}
        after = error or {}
        changed = session.connection_state != state or (
            before.get("code"),
            before.get("message"),
        ) != (after.get("code"), after.get("message"))
        if not changed:
            return False
        session.connection_state = state
        session.last_error = error
        if state == ConnectionState.CONNECTED:
            session.connected_at = timezone.now()
        session.save()
        services.announce_connection_state(session)
    return True


def line_connected(session_id: str) -> bool:
    """The network accepted the line (registered, listening): ``connected``."""
    return _report(session_id, ConnectionState.CONNECTED, None)


def line_failed(session_id: str, code: str, message: str) -> bool:
    """The network refused the line or could not be reached: ``error`` + ``lastError``."""
    logger.warning("Line %s failed: %s", session_id, code)
    error = {"code": code, "message": message, "at": iso_ms(timezone.now()) or ""}
    return _report(session_id, ConnectionState.ERROR, error)
