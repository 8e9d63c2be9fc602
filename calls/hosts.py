"""Engine hosts: registration, heartbeats, and the reaper for calls whose host died."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from calls import services
from calls.carriers.base import LineInfo
from calls.credentials import unseal
from calls.models import Call, CallState, Direction, EndReason, EngineHost, Session
from calls.runtime import hooks as runtime_hooks
from calls.snapshots import call_snapshot, forget_host, websocket_base
from config.errors import NotFound


def host_register(*, host_id: str, channel_name: str) -> EngineHost:
    """Record this process as a host: its channel and the URL clients reach it at."""
    process_url = settings.SWITCHBOARD_PROCESS_URL
    host, _ = EngineHost.objects.update_or_create(
        host_id=host_id,
        defaults={
            "channel_name": channel_name,
            "process_url": websocket_base(process_url) if process_url else "",
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "last_seen": timezone.now(),
        },
    )
    forget_host(host_id)
    return host


def host_beat(host_id: str, channel_name: str) -> None:
    if not EngineHost.objects.filter(host_id=host_id).update(last_seen=timezone.now()):
        host_register(host_id=host_id, channel_name=channel_name)


def host_retire(host_id: str) -> None:
    """A stopping host takes no more commands: other processes stop asking it at once
    (its calls have ended) instead of waiting for it to go stale."""
    EngineHost.objects.filter(host_id=host_id).update(channel_name="")


def _stale_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.ENGINE_STALE_AFTER_S)


def live_channel_of(host_id: str) -> str | None:
    """The channel of a host that is still beating (None if it is gone or silent)."""
    host = EngineHost.objects.filter(
        host_id=host_id, last_seen__gte=_stale_before()
    ).first()
    return host.channel_name if host and host.channel_name else None


def reap_orphaned_calls(*, alive_host: str | None = None) -> int:
    """End, as ``failed``, every live call whose host stopped beating; return how many.

    ``alive_host`` is the calling engine's own id: a host never reaps itself.
    """
    stale = _stale_before()
    alive = set(
        EngineHost.objects.filter(last_seen__gte=stale).values_list(
            "host_id", flat=True
        )
    )
    if alive_host:
        alive.add(alive_host)
    orphans = (
        Call.objects.exclude(state=CallState.ENDED)
        .exclude(host__in=alive)
        .values_list("pk", "host", "answered_at", "created_at")
    )
    last_beats = dict(EngineHost.objects.values_list("host_id", "last_seen"))
    count = 0
    for pk, host, answered_at, created_at in list(orphans[:1000]):
        # The call died with its host: it ended at the host's last beat (never before
        # it began), not when the reaper noticed.
        ended_at = last_beats.get(host)
        if ended_at is not None:
            ended_at = max(ended_at, answered_at or created_at)
        if services.call_transition(
            call_id=pk,
            to=CallState.ENDED,
            end_reason=EndReason.FAILED,
            ended_at=ended_at,
        ):
            runtime_hooks.call_reaped(pk)
            count += 1
    EngineHost.objects.filter(last_seen__lt=stale - timedelta(hours=1)).delete()
    return count


def gone_among(call_pks: list[int]) -> set[int]:
    """The calls among these that have ended (or no longer exist)."""
    live = Call.objects.filter(pk__in=call_pks).exclude(state=CallState.ENDED)
    return set(call_pks) - set(live.values_list("pk", flat=True))


def call_pk_of(call_id: str) -> int:
    return Call.objects.values_list("pk", flat=True).get(public_id=call_id)


def call_details(call_pk: int) -> dict[str, Any]:
    call = Call.objects.select_related("session", "environment").get(pk=call_pk)
    return {
        "call_id": str(call.public_id),
        "environment_id": str(call.environment.public_id),
        "session_id": str(call.session.public_id),
        "direction": call.direction,
        "peer_address": call.peer_address,
        "carrier": call.session.carrier,
        "client_gone_after_s": call.environment.end_call_when_client_gone_after_s,
        "line": line_info(call.session),
        "snapshot": call_snapshot(call),
    }


def line_info(session: Session) -> LineInfo:
    """What a driver is told about a session's line (its credentials decrypted)."""
    return LineInfo(
        session_id=str(session.public_id),
        environment_id=str(session.environment.public_id),
        address=session.address,
        settings=dict(session.carrier_settings or {}),
        secrets=unseal(session.credentials),
    )


def offer_incoming(
    session_id: str, from_address: str, host: str
) -> tuple[int, dict[str, Any]]:
    """Create the ringing row of a call the network offers; return its pk and details."""
    session = (
        Session.objects.select_related("environment")
        .filter(public_id=session_id, deleted_at__isnull=True)
        .first()
    )
    if session is None:
        raise NotFound("No such session.", code="session_not_found")
    call = services.call_create(
        session=session,
        peer_address=from_address,
        direction=Direction.INCOMING,
        host=host,
    )
    return call.pk, call_details(call.pk)
