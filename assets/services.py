"""Writes for audio assets: upload, decode (in a task), delete."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from djangorestframework_camel_case.util import camelize

from accounts.models import Environment
from assets import decoding, selectors
from assets.api.serializers import AssetSerializer
from assets.models import AssetStatus, AudioAsset
from assets.uploads import FIELD, not_audio, too_large
from audio.wav import WavWriter
from config.errors import ApplicationError, Conflict, InvalidRequest
from config.times import iso_ms
from events import selectors as event_selectors
from events.models import EventType
from events.services import event_emit

logger = logging.getLogger(__name__)

# Stuck assets looked at per sweep.
SWEEP_BATCH = 100

NORMALISED_NAME = "audio.wav"
MAX_FILENAME = 255


def asset_data(asset: AudioAsset) -> dict[str, Any]:
    """The asset's API representation (camelCase), as events carry it."""
    return camelize(AssetSerializer(asset).data)


def _display_name(name: str | None) -> str:
    name = (name or "").strip() or "audio"
    if len(name) <= MAX_FILENAME:
        return name
    stem, dot, suffix = name.rpartition(".")
    if dot and 0 < len(suffix) <= 16:
        return stem[: MAX_FILENAME - len(suffix) - 1] + "." + suffix
    return name[:MAX_FILENAME]


def _rejection_error(rejected: decoding.AudioRejected) -> ApplicationError:
    if rejected.http_status == 415:
        return not_audio(rejected.message)
    if rejected.http_status == 413:
        return too_large(settings.ASSET_MAX_UPLOAD_BYTES)
    return InvalidRequest(rejected.message, code=rejected.code, param=FIELD)


@contextmanager
def _local_path(upload: UploadedFile) -> Iterator[str]:
    """A path on local disk holding the upload's bytes."""
    if hasattr(upload, "temporary_file_path"):
        yield upload.temporary_file_path()
        return
    with tempfile.NamedTemporaryFile(suffix=".upload") as copy:
        for chunk in upload.chunks():
            copy.write(chunk)
        copy.flush()
        upload.seek(0)
        yield copy.name


def asset_create(*, environment: Environment, upload: UploadedFile) -> AudioAsset:
    """Store an upload as a new asset (``processing``) and queue its decoding.

    Only what the first bytes show is judged here (size, format, header fields);
    everything that needs a decoder happens in the task and ends ``ready`` or ``failed``.
    """
    size = upload.size or 0
    if size > settings.ASSET_MAX_UPLOAD_BYTES:
        raise too_large(settings.ASSET_MAX_UPLOAD_BYTES)
    try:
        with _local_path(upload) as path:
            fmt = decoding.inspect_file(path)
    except decoding.AudioRejected as rejected:
        raise _rejection_error(rejected) from None
    asset = AudioAsset(
        environment=environment,
        filename=_display_name(upload.name),
        content_type=fmt.content_type,
        size_bytes=size,
    )
    upload.seek(0)
    asset.original_name = default_storage.save(
        f"{asset.storage_prefix}original.{fmt.extension}", upload
    )
    try:
        with transaction.atomic():
            asset.save()
            public_id = str(asset.public_id)
            transaction.on_commit(lambda: _enqueue_decoding(public_id))
    except BaseException:
        default_storage.delete(asset.original_name)
        raise
    return asset


def _enqueue_decoding(asset_id: str) -> None:
    from assets.tasks import asset_decode

    options = (
        {"queue": settings.ASSET_DECODE_QUEUE} if settings.ASSET_DECODE_QUEUE else {}
    )
    try:
        asset_decode.apply_async((asset_id,), **options)
    except Exception:
        # A broker that refuses the task must not leave the asset processing forever.
        logger.exception("Could not queue the decoding of asset %s", asset_id)
        asset = selectors.asset_for_processing(asset_id)
        if asset is not None:
            _asset_fail(
                asset,
                "queue_unavailable",
                "The asset could not be queued for decoding; upload it again.",
            )


@contextmanager
def _stored_file_on_disk(name: str) -> Iterator[str]:
    """A local path for a stored file: itself on local storage, a copy otherwise."""
    try:
        yield default_storage.path(name)
        return
    except NotImplementedError:
        pass
    with (
        default_storage.open(name, "rb") as source,
        tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as copy,
    ):
        shutil.copyfileobj(source, copy, 1024 * 1024)
        copy.flush()
        yield copy.name


def _store_normalised(asset: AudioAsset, samples: decoding.Samples) -> str:
    handle, path = tempfile.mkstemp(suffix=".wav")
    os.close(handle)
    try:
        with WavWriter(path, decoding.TARGET_RATE) as writer:
            writer.write(samples)
        with open(path, "rb") as wav:
            return default_storage.save(f"{asset.storage_prefix}{NORMALISED_NAME}", wav)
    finally:
        os.unlink(path)


def asset_process(*, asset_id: str) -> AudioAsset | None:
    """Decode a processing asset to 16 kHz mono and mark it ready, or failed with why."""
    asset = selectors.asset_for_processing(asset_id)
    if asset is None or asset.status != AssetStatus.PROCESSING:
        return asset  # deleted, or a redelivered task whose work is done
    try:
        with _stored_file_on_disk(asset.original_name) as path:
            decoded = decoding.decode_to_mono16k(
                path, max_seconds=settings.ASSET_MAX_DURATION_S
            )
    except decoding.AudioRejected as rejected:
        return _asset_fail(asset, rejected.code, rejected.message)
    except SoftTimeLimitExceeded:
        return _asset_fail(asset, "timeout", "Decoding the file took too long.")
    except FileNotFoundError:
        # Deleted while we were about to read it.
        return selectors.asset_for_processing(asset_id)
    except Exception:
        # MemoryError, a decoder bug: the worker survives and the user learns of it.
        logger.exception("Decoding asset %s failed unexpectedly", asset_id)
        return _asset_fail(
            asset, "decode_error", "The file could not be decoded as audio."
        )
    audio_name = _store_normalised(asset, decoded.samples)
    with transaction.atomic():
        updated = AudioAsset.objects.filter(
            pk=asset.pk, status=AssetStatus.PROCESSING
        ).update(
            status=AssetStatus.READY,
            audio_name=audio_name,
            duration_ms=decoded.duration_ms,
            sample_rate=decoded.original_sample_rate,
            channels=decoded.original_channels,
        )
        if updated:
            asset.refresh_from_db()
            event_emit(
                environment=asset.environment,
                type=EventType.ASSET_READY,
                data=asset_data(asset),
            )
    if not updated:
        # Deleted (or finished by a twin task) meanwhile: keep nothing of ours.
        default_storage.delete(audio_name)
        return selectors.asset_for_processing(asset_id)
    return asset


def _asset_fail(asset: AudioAsset, code: str, message: str) -> AudioAsset:
    with transaction.atomic():
        updated = AudioAsset.objects.filter(
            pk=asset.pk, status=AssetStatus.PROCESSING
        ).update(status=AssetStatus.FAILED, error=message, error_code=code)
        if updated:
            asset.refresh_from_db()
            event_emit(
                environment=asset.environment,
                type=EventType.ASSET_FAILED,
                data=asset_data(asset),
            )
    if updated and asset.original_name:
        # A failed asset keeps its row (and error) but not bytes nobody can play.
        default_storage.delete(asset.original_name)
    return asset


def asset_delete(*, asset: AudioAsset) -> AudioAsset:
    """Delete an asset and its files (playbacks already playing it play on)."""
    prefix = asset.storage_prefix
    names = [name for name in (asset.original_name, asset.audio_name) if name]
    with transaction.atomic():
        AudioAsset.objects.filter(pk=asset.pk).delete()
        transaction.on_commit(lambda: _delete_files(prefix, names))
    return asset


def _delete_files(prefix: str, names: list[str]) -> None:
    try:
        _, listed = default_storage.listdir(prefix)
        names = [*names, *(prefix + name for name in listed)]
    except (FileNotFoundError, NotImplementedError):
        pass
    for name in dict.fromkeys(names):
        default_storage.delete(name)
    with suppress(NotImplementedError, OSError):
        os.rmdir(default_storage.path(prefix))


def playbacks_reaped(*, call_pk: int) -> int:
    """Finish (``call_ended``) the playbacks a dead process left started; return how many.

    The reaper ends calls whose hosting process died; their runtimes never reported
    the end of what they were playing. Queued playbacks that never started left no
    trace and get no event.
    """
    from calls.models import Call

    call = Call.objects.select_related("environment", "session").get(pk=call_pk)
    call_id = str(call.public_id)
    with transaction.atomic():
        timeline = event_selectors.call_timeline(call.environment, call_id).filter(
            type__in=[EventType.CALL_PLAYBACK_STARTED, EventType.CALL_PLAYBACK_FINISHED]
        )
        open_playbacks: dict[str, dict[str, Any]] = {}
        for event in timeline:
            if event.type == EventType.CALL_PLAYBACK_STARTED:
                open_playbacks[event.data["playbackId"]] = event.data
            else:
                open_playbacks.pop(event.data["playbackId"], None)
        for started in open_playbacks.values():
            event_emit(
                environment=call.environment,
                type=EventType.CALL_PLAYBACK_FINISHED,
                data={
                    **started,
                    "reason": "call_ended",
                    "playedMs": None,
                    "finishedAt": iso_ms(call.ended_at),
                },
                session_public_id=call.session.public_id,
            )
    return len(open_playbacks)


# ---------------------------------------------------------------- playback into calls


def _require_active(call: Any) -> None:
    from calls.models import CallState

    if call.state != CallState.ACTIVE:
        raise Conflict(
            f"The call is {call.state}; audio plays only into active calls.",
            code="call_not_active",
        )


def playback_start(
    *, environment: Environment, call: Any, asset_id: str, mode: str = "queue"
) -> dict[str, Any]:
    """Play an environment's ready asset into its active call (queued or interrupting)."""
    from calls.runtime import control

    asset = selectors.asset_get(environment, asset_id)
    if asset.status != AssetStatus.READY:
        raise Conflict(
            f"The asset is {asset.status}; only ready assets can be played.",
            code="asset_not_ready",
        )
    _require_active(call)
    return control.run_command(call, "play", asset_id=str(asset.public_id), mode=mode)


def playback_stop(*, call: Any) -> dict[str, Any]:
    """Stop the call's current playback and drop the queued ones."""
    from calls.runtime import control

    _require_active(call)
    return control.run_command(call, "stop_playback")


def assets_sweep_stuck() -> dict[str, int]:
    """Queue again the decoding of assets left ``processing`` past ASSET_STUCK_AFTER_S
    (their worker died mid-task); fail those stuck three times as long."""
    from datetime import timedelta

    from django.utils import timezone

    after = timedelta(seconds=settings.ASSET_STUCK_AFTER_S)
    now = timezone.now()
    counts = {"requeued": 0, "failed": 0}
    stuck = AudioAsset.objects.filter(
        status=AssetStatus.PROCESSING, updated_at__lt=now - after
    ).order_by("updated_at")[:SWEEP_BATCH]
    for asset in stuck:
        if asset.updated_at < now - 3 * after:
            _asset_fail(
                asset,
                "decode_interrupted",
                "Decoding was interrupted again and again; upload the file again.",
            )
            counts["failed"] += 1
        else:
            logger.info(
                "Asset %s was left processing; decoding it again", asset.public_id
            )
            _enqueue_decoding(str(asset.public_id))
            counts["requeued"] += 1
    return counts
