"""Database work of the runtime, run off the event loop (never on the per-frame path)."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from calls import services
from calls.models import Call
from calls.snapshots import call_snapshot


def _transition(
    call_pk: int,
    to: str,
    end_reason: str,
    only_from: frozenset[str] | None = None,
    end_detail: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    call = services.call_transition(
        call_id=call_pk,
        to=to,
        end_reason=end_reason,
        only_from=only_from,
        end_detail=end_detail,
    )
    return None if call is None else call_snapshot(call)


def _set_muted(call_pk: int, muted: bool) -> dict[str, Any] | None:
    call = services.call_set_muted(call_id=call_pk, muted=muted)
    return None if call is None else call_snapshot(call)


def _snapshot(call_pk: int) -> dict[str, Any]:
    return call_snapshot(Call.objects.select_related("session").get(pk=call_pk))


def _dtmf_received(call_pk: int, digit: str, duration_ms: int) -> None:
    services.call_dtmf_received(call_id=call_pk, digit=digit, duration_ms=duration_ms)


def _set_transport(call_pk: int, transport: str) -> None:
    services.call_set_transport(call_id=call_pk, transport=transport)


# Not thread-sensitive: runtime writes may run in parallel worker threads.
transition = database_sync_to_async(_transition, thread_sensitive=False)
set_muted = database_sync_to_async(_set_muted, thread_sensitive=False)
snapshot = database_sync_to_async(_snapshot, thread_sensitive=False)
set_transport = database_sync_to_async(_set_transport, thread_sensitive=False)
dtmf_received = database_sync_to_async(_dtmf_received, thread_sensitive=False)
