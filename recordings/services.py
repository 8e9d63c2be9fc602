"""Writes for recordings: finalise a call's spool, delete, purge, backfill waveforms."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import soundfile
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from audio import SAMPLE_RATE
from audio.wav import repair_wav_header
from calls.models import Call, CallState
from config.tenancy import parse_public_id
from config.times import iso_ms
from events.models import EventType
from events.services import event_emit
from recordings import selectors, spool
from recordings.models import CONTENT_TYPE, Recording
from recordings.waveform import Waveform, waveform_of

logger = logging.getLogger(__name__)

# A spool directory whose call no longer exists is removed once it is this old.
ABANDONED_SPOOL_S = 24 * 3600
# An ended call's spool younger than this is left to the finalisation already under way.
SWEEP_GRACE_S = 120


@dataclass(frozen=True)
class _Spooled:
    kind: str
    path: Path
    samples: int
    size_bytes: int


def recording_event_data(recording: Recording) -> dict[str, Any]:
    """The metadata ``call.recording.ready`` carries (never audio)."""
    return {
        "callId": str(recording.call.public_id),
        "recordingId": str(recording.public_id),
        "kind": recording.kind,
        "contentType": CONTENT_TYPE,
        "durationMs": recording.duration_ms,
        "sizeBytes": recording.size_bytes,
        "expiresAt": iso_ms(recording.expires_at),
    }


def recordings_enqueue_finalise(call_id: str) -> None:
    """Queue the finalisation of a call's spool (embedded: run it now, here)."""
    from recordings.tasks import finalise_recordings

    try:
        finalise_recordings.delay(call_id)
    except Exception:
        # The spool stays: the periodic purge finalises leftovers of ended calls.
        logger.exception("Could not queue the recordings of call %s", call_id)


def _spooled(directory: Path) -> list[_Spooled]:
    try:
        spool.split(directory)
    except (ValueError, OSError, soundfile.LibsndfileError) as exc:
        if not directory.exists():
            return []  # removed meanwhile: a twin finalisation stored it
        logger.error("Recording %s is unreadable (%s); it is skipped", directory, exc)
        return []
    found = []
    for kind in spool.KINDS:
        path = spool.wav_path(directory, kind)
        if not path.exists():
            continue
        try:
            # Fixes the sizes of files a crashed process never closed; a no-op otherwise.
            samples = repair_wav_header(path)
        except (ValueError, OSError) as exc:
            logger.error("Recording %s is unreadable (%s); it is skipped", path, exc)
            continue
        found.append(_Spooled(kind, path, samples, path.stat().st_size))
    return found


def _delete_quietly(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:
            logger.exception("Could not delete stored recording %s", name)


def _store(call: Call, artifacts: list[_Spooled]) -> list[str]:
    prefix = f"env/{call.environment.public_id}/recordings/{call.public_id}/"
    names: list[str] = []
    try:
        for artifact in artifacts:
            with artifact.path.open("rb") as wav:
                # Never overwrites: a name already taken (a twin's upload) gets a suffix.
                names.append(
                    default_storage.save(f"{prefix}{artifact.kind}.wav", File(wav))
                )
    except BaseException:
        _delete_quietly(names)
        raise
    return names


def _spooled_waveform(path: Path) -> Waveform | None:
    try:
        return waveform_of(str(path))
    except Exception:
        # A missing waveform never costs the recording: backfill_waveforms retries it.
        logger.exception("Could not compute the waveform of %s", path)
        return None


def recordings_finalise(*, call_id: str) -> list[Recording]:
    """Store an ended call's spooled WAVs and record them (idempotent).

    The files go to default storage first, then each gets its waveform (read from the
    spool, the same bytes); the rows and their ``call.recording.ready`` events are
    written in one transaction; the spool is deleted only once that commits.
    """
    directory = spool.call_dir(call_id)
    call = selectors.call_for_finalising(call_id)
    if call is None:
        # Deleted, or a task meant for another database: the sweep ages the spool out.
        return []
    if call.state != CallState.ENDED:
        return []  # still live: its runtime finalises it when it ends
    existing = list(Recording.objects.filter(call=call))
    if existing or not call.record:
        spool.remove(directory)
        return existing
    artifacts = [a for a in _spooled(directory) if a.samples > 0]
    if not artifacts:
        # A twin finalisation may have committed and removed the spool meanwhile.
        existing = list(Recording.objects.filter(call=call))
        if existing:
            return existing
        spool.remove(directory)
        return []
    try:
        names = _store(call, artifacts)
    except FileNotFoundError:
        # A twin finalisation committed and removed the spool while we uploaded it.
        existing = list(Recording.objects.filter(call=call))
        if existing:
            return existing
        raise
    waveforms = [_spooled_waveform(artifact.path) for artifact in artifacts]
    committed: list[bool] = []
    try:
        with transaction.atomic():
            # Registered first, so it runs first: later failures can tell a commit.
            transaction.on_commit(lambda: committed.append(True))
            # Serialises twin finalisations of one call (the reaper and a slow host).
            list(Call.objects.select_for_update().filter(pk=call.pk).values("pk"))
            existing = list(Recording.objects.filter(call=call))
            if existing:
                # A twin won: drop our copies (never a file its rows name).
                kept = {recording.file_name for recording in existing}
                ours = [name for name in names if name not in kept]
                transaction.on_commit(lambda: _delete_quietly(ours))
                return existing
            created_at = timezone.now()
            expires_at = created_at + timedelta(
                days=call.environment.recording_retention_days
            )
            recordings = []
            for artifact, name, waveform in zip(
                artifacts, names, waveforms, strict=True
            ):
                recording = Recording.objects.create(
                    environment=call.environment,
                    call=call,
                    kind=artifact.kind,
                    created_at=created_at,
                    file_name=name,
                    duration_ms=artifact.samples * 1000 // SAMPLE_RATE,
                    size_bytes=artifact.size_bytes,
                    expires_at=expires_at,
                    waveform=waveform,
                )
                event_emit(
                    environment=call.environment,
                    type=EventType.CALL_RECORDING_READY,
                    data=recording_event_data(recording),
                    session_public_id=call.session.public_id,
                )
                recordings.append(recording)
            transaction.on_commit(lambda: spool.remove(directory))
    except BaseException:
        if not committed:
            _delete_quietly(names)
        raise
    return recordings


def recordings_finalise_leftovers() -> int:
    """Finalise spools that ended calls left behind (a lost task, a failure); count them."""
    base = spool.root()
    if not base.is_dir():
        return 0
    done = 0
    now = time.time()
    grace = timezone.now() - timedelta(seconds=SWEEP_GRACE_S)
    for entry in os.scandir(base):
        if not entry.is_dir() or parse_public_id(entry.name) is None:
            continue
        call = selectors.call_for_finalising(entry.name)
        if call is None:
            if now - entry.stat().st_mtime > ABANDONED_SPOOL_S:
                spool.remove(Path(entry.path))
            continue
        if call.ended_at is None or call.ended_at > grace:
            continue
        try:
            recordings_finalise(call_id=entry.name)
        except Exception:
            logger.exception("Finalising the leftover spool of call %s failed", call)
            continue
        done += 1
    return done


def recording_delete(*, recording: Recording) -> Recording:
    """Delete a recording: its row, then its file."""
    deleted, _ = Recording.objects.filter(pk=recording.pk).delete()
    if deleted:
        _delete_quietly([recording.file_name])
    return recording


def recordings_delete(recordings: list[Recording]) -> int:
    """Delete these recordings (rows, then files); return how many rows went."""
    deleted, _ = Recording.objects.filter(pk__in=[r.pk for r in recordings]).delete()
    _delete_quietly([r.file_name for r in recordings])
    return deleted


def recordings_purge_expired(
    *,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete expired recordings, rows then files, in batches; return how many rows went.

    Safe to run twice at once: each batch deletes only rows still expired and present,
    and deleting a file that is already gone is a no-op.
    """
    total = 0
    while True:
        now = timezone.now()
        batch = list(
            Recording.objects.filter(expires_at__lte=now)
            .order_by("expires_at", "pk")
            .values_list("pk", "file_name")[:batch_size]
        )
        if not batch:
            return total
        deleted, _ = Recording.objects.filter(
            pk__in=[pk for pk, _ in batch], expires_at__lte=now
        ).delete()
        _delete_quietly([name for _, name in batch])
        total += deleted
        if progress is not None:
            progress(total)
        if len(batch) < batch_size:
            return total


def _stored_waveform(file_name: str) -> Waveform | None:
    """The waveform of a stored WAV; empty if it holds no audio or is gone or unreadable,
    None if it could not be read now (the next run tries again)."""
    try:
        with default_storage.open(file_name, "rb") as stored:
            return waveform_of(stored)
    except FileNotFoundError:
        logger.warning("Recording %s is missing from storage", file_name)
        return []
    except soundfile.LibsndfileError as exc:
        logger.warning("Recording %s is not a readable WAV (%s)", file_name, exc)
        return []
    except Exception:
        logger.exception("Could not read recording %s", file_name)
        return None


def recordings_backfill_waveforms(
    *,
    batch_size: int,
    progress: Callable[[int, int, int], None] | None = None,
) -> tuple[int, int]:
    """Compute the waveforms recordings lack, oldest first; return (done, failed).

    ``progress(done, failed, total)`` is told after each batch. Safe to run twice at
    once: a row is written only while it still has no waveform.
    """
    pending = Recording.objects.filter(
        waveform__isnull=True, expires_at__gt=timezone.now()
    )
    total = pending.count()
    done = failed = 0
    after = 0
    while True:
        batch = list(
            pending.filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", "file_name")[:batch_size]
        )
        for pk, file_name in batch:
            waveform = _stored_waveform(file_name)
            if waveform is None:
                failed += 1
                continue
            Recording.objects.filter(pk=pk, waveform__isnull=True).update(
                waveform=waveform
            )
            done += 1
        if batch:
            after = batch[-1][0]
            if progress is not None:
                progress(done, failed, total)
        if len(batch) < batch_size:
            return done, failed
