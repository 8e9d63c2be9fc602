"""Finalising a call's spool: idempotent, failure-safe, and repairing crashed files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from celery.exceptions import Retry
from django.core.files.storage import FileSystemStorage

from audio.codecs import float_to_pcm16
from audio.wav import WavWriter
from conftest import Tenant
from events.models import Event
from recordings import services, spool
from recordings.models import Recording
from recordings.recorder import RecordingBank, wait_for_spool_writes
from recordings.tasks import finalise_recordings
from recordings.tests.conftest import ended_call, spool_audio, stored_wav, tone

pytestmark = pytest.mark.django_db(transaction=True)


def stored_files(settings: Any) -> list[str]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_finalising_twice_stores_once_and_emits_once(
    tenant: Tenant, settings: Any
) -> None:
    call = ended_call(tenant.test)
    directory = spool_audio(call, tone(1.0), tone(1.0, hz=1000))
    first = services.recordings_finalise(call_id=str(call.public_id))
    assert sorted(r.kind for r in first) == ["inbound", "mixed", "outbound"]
    assert not directory.exists()
    prefix = f"env/{tenant.test.public_id}/recordings/{call.public_id}/"
    assert stored_files(settings) == [
        prefix + "inbound.wav",
        prefix + "mixed.wav",
        prefix + "outbound.wav",
    ]

    # Eager tasks in other threads flip Celery's process-wide join guard: skip it.
    second = finalise_recordings.delay(str(call.public_id)).get(
        disable_sync_subtasks=False
    )
    assert second == 3
    assert Recording.objects.count() == 3
    assert Event.objects.filter(type="call.recording.ready").count() == 3
    assert len(stored_files(settings)) == 3


def test_a_storage_failure_keeps_the_spool_and_a_retry_stores_it(
    tenant: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = ended_call(tenant.test)
    directory = spool_audio(call, tone(1.0), tone(1.0, hz=1000))
    real_save = FileSystemStorage.save
    saved: list[str] = []

    def flaky_save(self: Any, name: str, content: Any, **kwargs: Any) -> str:
        if saved:
            raise OSError("disk full")
        saved.append(real_save(self, name, content, **kwargs))
        return saved[-1]

    monkeypatch.setattr(FileSystemStorage, "save", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        services.recordings_finalise(call_id=str(call.public_id))
    # Nothing half-stored, nothing recorded, the audio still spooled.
    assert stored_files(settings) == []
    assert not Recording.objects.exists()
    assert sorted(p.name for p in directory.iterdir()) == [
        "call.wav",  # what the call wrote, and the split a retry redoes
        "inbound.wav",
        "mixed.wav",
        "outbound.wav",
    ]

    monkeypatch.undo()
    assert len(services.recordings_finalise(call_id=str(call.public_id))) == 3
    assert not directory.exists()


def test_a_database_failure_after_upload_removes_the_upload_and_keeps_the_spool(
    tenant: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = ended_call(tenant.test)
    directory = spool_audio(call, tone(0.5), tone(0.5))

    def broken_emit(**kwargs: Any) -> None:
        raise RuntimeError("event log unavailable")

    monkeypatch.setattr(services, "event_emit", broken_emit)
    with pytest.raises(RuntimeError):
        services.recordings_finalise(call_id=str(call.public_id))
    assert not Recording.objects.exists()
    assert stored_files(settings) == []
    assert directory.exists()


def test_the_task_retries_with_backoff_when_not_in_process(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = ended_call(tenant.test)
    spool_audio(call, tone(0.5), tone(0.5))
    monkeypatch.setattr(
        services,
        "recordings_finalise",
        lambda **kwargs: (_ for _ in ()).throw(OSError("S3 unavailable")),
    )
    retried: dict[str, Any] = {}

    def fake_retry(*, exc: BaseException, countdown: int) -> Retry:
        retried.update(exc=exc, countdown=countdown)
        return Retry()

    monkeypatch.setattr(finalise_recordings, "retry", fake_retry)
    finalise_recordings.push_request(retries=3, is_eager=False)
    try:
        with pytest.raises(Retry):
            finalise_recordings.run(str(call.public_id))
    finally:
        finalise_recordings.pop_request()
    assert retried["countdown"] == 40  # 5 s doubled three times
    assert str(retried["exc"]) == "S3 unavailable"
    assert spool.call_dir(str(call.public_id)).exists()


def test_files_a_crashed_process_never_closed_are_repaired_and_stored(
    tenant: Tenant,
) -> None:
    call = ended_call(tenant.test)
    bank = RecordingBank()
    recorder = bank.open(spool.call_dir(str(call.public_id)))
    signal = tone(2.5)
    for start in range(0, len(signal), 320):
        recorder.on_media(signal[start : start + 320], signal[start : start + 320] * 0)
        bank.frame_done()
    # No close(): the header still says "no data"; 0.5 s was only in memory.
    wait_for_spool_writes()
    raw = spool.audio_path(recorder.directory).read_bytes()
    assert int.from_bytes(raw[40:44], "little") == 0
    assert len(raw) == 44 + 2 * 2 * 32000  # two channels, two seconds
    assert soundfile.info(io.BytesIO(raw)).frames == 0  # what a reader makes of it

    recordings = {
        r.kind: r for r in services.recordings_finalise(call_id=str(call.public_id))
    }
    assert recordings["inbound"].duration_ms == 2000
    inbound, info = stored_wav(recordings["inbound"])
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    np.testing.assert_array_equal(inbound, float_to_pcm16(signal[:32000]))


def test_a_call_that_carried_no_media_gets_no_recordings(tenant: Tenant) -> None:
    call = ended_call(tenant.test)
    directory = spool_audio(call, np.zeros(0, np.float32), np.zeros(0, np.float32))
    assert directory.exists()
    assert services.recordings_finalise(call_id=str(call.public_id)) == []
    assert not Recording.objects.exists() and not directory.exists()


def test_a_live_call_is_not_finalised_under_its_runtime(tenant: Tenant) -> None:
    call = ended_call(tenant.test)
    directory = spool_audio(call, tone(0.5), tone(0.5))
    type(call).objects.filter(pk=call.pk).update(state="active", end_reason="")
    assert services.recordings_finalise(call_id=str(call.public_id)) == []
    assert directory.exists()


def test_the_sweep_finalises_spools_that_ended_calls_left_behind(
    tenant: Tenant, settings: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    call = ended_call(tenant.test)
    directory = spool_audio(call, tone(0.5), tone(0.5))
    # Just ended: its own finalisation may be under way, the sweep leaves it.
    assert services.recordings_finalise_leftovers() == 0
    type(call).objects.filter(pk=call.pk).update(
        ended_at=timezone.now() - timedelta(minutes=10)
    )
    assert services.recordings_finalise_leftovers() == 1
    assert Recording.objects.filter(call=call).count() == 3
    assert not directory.exists()


def test_twin_finalisations_at_once_store_each_artifact_once(
    tenant: Tenant, settings: Any
) -> None:
    import threading

    from django.db import connection

    call = ended_call(tenant.test)
    directory = spool_audio(call, tone(1.0), tone(1.0, hz=1000))
    start = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def finalise() -> None:
        try:
            start.wait()
            found = services.recordings_finalise(call_id=str(call.public_id))
            results.append(sorted(r.file_name for r in found))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    twins = [threading.Thread(target=finalise) for _ in range(2)]
    for twin in twins:
        twin.start()
    for twin in twins:
        twin.join(30)
    assert errors == []
    assert results[0] == results[1]  # both report the rows that won
    assert Recording.objects.count() == 3
    assert Event.objects.filter(type="call.recording.ready").count() == 3
    assert stored_files(settings) == results[0]
    assert not directory.exists()


def test_a_twin_that_finishes_while_the_other_splits_leaves_it_its_rows(
    tenant: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    # The race above, made certain: while one finalisation splits the spool file, its
    # twin stores everything and removes the spool. The first then finds nothing to
    # store and reports the twin's rows, with no error logged and nothing stored twice.
    call = ended_call(tenant.test)
    directory = spool_audio(call, tone(1.0), tone(1.0, hz=1000))
    real_split = spool.split
    twin: list[Recording] = []

    def split_while_a_twin_wins(path: Path) -> bool:
        monkeypatch.setattr(spool, "split", real_split)
        twin.extend(services.recordings_finalise(call_id=str(call.public_id)))
        assert not directory.exists()
        return real_split(path)

    monkeypatch.setattr(spool, "split", split_while_a_twin_wins)
    found = services.recordings_finalise(call_id=str(call.public_id))
    assert len(twin) == 3
    assert sorted(r.pk for r in found) == sorted(r.pk for r in twin)
    assert Recording.objects.count() == 3
    assert Event.objects.filter(type="call.recording.ready").count() == 3
    assert stored_files(settings) == sorted(r.file_name for r in twin)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_spool_without_a_call_is_kept_a_day_then_swept(
    tenant: Tenant, spool_dir: Path
) -> None:
    import os
    import time
    import uuid

    orphan = spool_dir / str(uuid.uuid4())
    orphan.mkdir(parents=True)
    (orphan / "inbound.wav").write_bytes(b"RIFF")
    # A task for a call this database does not know leaves the files alone.
    assert services.recordings_finalise(call_id=orphan.name) == []
    assert services.recordings_finalise_leftovers() == 0
    assert orphan.exists()
    day_old = time.time() - 25 * 3600
    os.utime(orphan, (day_old, day_old))
    services.recordings_finalise_leftovers()
    assert not orphan.exists()


def test_a_spool_of_three_mono_files_from_an_earlier_version_is_stored(
    tenant: Tenant,
) -> None:
    """A process of the previous release wrote each track to its own file."""
    call = ended_call(tenant.test)
    directory = spool.call_dir(str(call.public_id))
    directory.mkdir(parents=True)
    signals = {"inbound": tone(0.5), "outbound": tone(0.5, hz=1000)}
    signals["mixed"] = signals["inbound"] + signals["outbound"]
    for kind, signal in signals.items():
        with WavWriter(spool.wav_path(directory, kind)) as writer:
            writer.write(signal)
    recordings = {
        r.kind: r for r in services.recordings_finalise(call_id=str(call.public_id))
    }
    assert sorted(recordings) == sorted(signals)
    for kind, signal in signals.items():
        stored, _ = stored_wav(recordings[kind])
        np.testing.assert_array_equal(stored, float_to_pcm16(signal))
    assert not directory.exists()
