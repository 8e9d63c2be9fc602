"""Reads of recordings, scoped to one environment; expired recordings are gone already."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Environment
from calls.models import Call, CallState
from config.tenancy import parse_public_id, scoped_get
from recordings.models import CONTENT_TYPE, Recording


def _unexpired() -> QuerySet[Recording]:
    # Past its expiry a recording is not served, whether or not the purge has run yet.
    return Recording.objects.filter(expires_at__gt=timezone.now())


def recording_list(
    environment: Environment, *, call: Call | None = None, kind: str | None = None
) -> QuerySet[Recording]:
    """The environment's recordings (newest first once paginated)."""
    recordings = (
        _unexpired().select_related("call__session").filter(environment=environment)
    )
    if call is not None:
        recordings = recordings.filter(call=call)
    if kind:
        recordings = recordings.filter(kind=kind)
    return recordings


def recording_get(environment: Environment, recording_id: object) -> Recording:
    """The environment's recording with this id, or NotFound (also for other tenants')."""
    return scoped_get(
        _unexpired().select_related("call__session"),
        environment,
        recording_id,
        what="recording",
    )


def call_get(environment: Environment, call_id: object) -> Call:
    """The environment's call a ``?callId=`` filter names, or NotFound."""
    return scoped_get(Call.objects.all(), environment, call_id, what="call")


def _may_have_recordings(call: Call) -> bool:
    # Recordings exist only for ended calls that carried media.
    return (
        call.state == CallState.ENDED and call.answered_at is not None and call.record
    )


def recording_summaries_for_call(call: Call) -> list[dict[str, Any]]:
    """The call's recordings as ``{recordingId, kind, durationMs}`` for its snapshot."""
    return recording_summaries_for_calls([call]).get(call.pk, [])


def recording_summaries_for_calls(
    calls: Sequence[Call],
) -> dict[int, list[dict[str, Any]]]:
    """The recordings of a page of calls, by call pk, in one query."""
    pks = [call.pk for call in calls if _may_have_recordings(call)]
    if not pks:
        return {}
    rows = (
        _unexpired()
        .filter(call_id__in=pks)
        .order_by("pk")
        .values_list("call_id", "public_id", "kind", "duration_ms")
    )
    summaries: dict[int, list[dict[str, Any]]] = {}
    for call_pk, public_id, kind, duration_ms in rows:
        summaries.setdefault(call_pk, []).append(
            {"recordingId": str(public_id), "kind": kind, "durationMs": duration_ms}
        )
    return summaries


def call_for_finalising(call_id: object) -> Call | None:
    """The call a finalisation task was queued for (None if it no longer exists).

    Unscoped on purpose: tasks carry no tenant; the id came from our own runtime.
    """
    parsed = parse_public_id(call_id)
    if parsed is None:
        return None
    return (
        Call.objects.select_related("environment", "session")
        .filter(public_id=parsed)
        .first()
    )


def recorded_call_id(call_pk: int) -> str | None:
    """The public id of a call the reaper ended, if it was recorded and had media."""
    public_id = (
        Call.objects.filter(pk=call_pk, record=True, answered_at__isnull=False)
        .values_list("public_id", flat=True)
        .first()
    )
    return None if public_id is None else str(public_id)


@dataclass(frozen=True)
class AudioLocation:
    """Where a recording's bytes are: a local path to stream, or a URL to redirect to."""

    path: str | None = None
    url: str | None = None


def recording_audio_location(recording: Recording) -> AudioLocation:
    """Locate a recording's WAV: on local storage its path, else a short-lived URL."""
    try:
        return AudioLocation(path=default_storage.path(recording.file_name))
    except NotImplementedError:
        pass
    # S3Storage.url() signs with these options; the base Storage.url() knows none.
    storage: Any = default_storage
    try:
        url = storage.url(
            recording.file_name,
            parameters={"ResponseContentType": CONTENT_TYPE},
            expire=settings.RECORDING_URL_EXPIRE_S,
        )
    except TypeError:
        # A remote storage other than S3, whose url() takes no signing options.
        url = storage.url(recording.file_name)
    return AudioLocation(url=url)
