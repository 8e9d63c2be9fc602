"""Decoding's edges: deletion races, broker failures, crashes, redelivery, dead hosts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from assets import decoding, services
from assets.models import AssetStatus, AudioAsset
from assets.tasks import asset_decode
from assets.tests.conftest import ASSETS, FIXTURES, stored_files, upload
from calls.models import Call, CallState, Direction, EndReason
from calls.runtime import hooks
from conftest import Tenant
from events.models import Event
from events.services import event_emit

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("decode_in_process"),
]


def _processing_asset(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> AudioAsset:
    """An uploaded asset whose decoding has not run yet."""
    monkeypatch.setattr(services, "_enqueue_decoding", lambda asset_id: None)
    response = upload(tenant.client(), FIXTURES / "speech_8k_mulaw.wav")
    monkeypatch.undo()
    asset = AudioAsset.objects.get(public_id=response.json()["data"]["id"])
    assert asset.status == AssetStatus.PROCESSING
    return asset


def test_asset_deleted_while_decoding_leaves_no_file(
    tenant: Tenant, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asset = _processing_asset(tenant, monkeypatch)
    decode = decoding.decode_to_mono16k

    def decode_then_lose_the_asset(path: Any, **kwargs: Any) -> Any:
        decoded = decode(path, **kwargs)
        services.asset_delete(asset=asset)
        return decoded

    monkeypatch.setattr(decoding, "decode_to_mono16k", decode_then_lose_the_asset)

    assert services.asset_process(asset_id=str(asset.public_id)) is None

    assert not AudioAsset.objects.exists()
    assert stored_files(media_root) == []
    assert not Event.objects.filter(type__startswith="asset.").exists()


def test_task_for_a_deleted_asset_does_nothing(
    tenant: Tenant, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asset = _processing_asset(tenant, monkeypatch)
    services.asset_delete(asset=asset)

    # Eager tasks running in other threads flip Celery's process-wide "joining would
    # block" guard, so the guard is not consulted here.
    result = asset_decode.apply(args=(str(asset.public_id),))
    assert result.get(disable_sync_subtasks=False) is None
    assert stored_files(media_root) == []


def test_redelivered_task_changes_nothing_once_ready(tenant: Tenant) -> None:
    created = upload(tenant.client(), FIXTURES / "speech_8k_mulaw.wav").json()["data"]

    result = asset_decode.apply(args=(created["id"],))
    assert result.get(disable_sync_subtasks=False) == "ready"  # see above
    assert Event.objects.filter(type="asset.ready").count() == 1


def test_broker_refusing_the_task_fails_the_asset_instead_of_leaving_it_processing(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(asset_decode, "apply_async", refuse)
    client = tenant.client()

    created = upload(client, FIXTURES / "speech_8k_mulaw.wav").json()["data"]

    got = client.get(f"{ASSETS}/{created['id']}").json()["data"]
    assert got["status"] == "failed"
    assert "could not be queued" in got["error"]


def test_decoder_crash_fails_the_asset_with_a_clear_error(
    tenant: Tenant, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(decoding, "decode_to_mono16k", out_of_memory)
    client = tenant.client()

    created = upload(client, FIXTURES / "speech_8k_mulaw.wav").json()["data"]

    got = client.get(f"{ASSETS}/{created['id']}").json()["data"]
    assert got["status"] == "failed"
    assert got["error"] == "The file could not be decoded as audio."
    assert AudioAsset.objects.get(public_id=created["id"]).error_code == "decode_error"
    assert stored_files(media_root) == []


def test_reaped_call_finishes_the_playbacks_its_dead_process_left_open(
    tenant: Tenant,
) -> None:
    from calls import services as call_services

    session = call_services.session_create(environment=tenant.test, display_name="x")
    call = Call.objects.create(
        environment=tenant.test,
        session=session,
        peer_address="15550000001@s.whatsapp.net",
        direction=Direction.OUTGOING,
        state=CallState.ENDED,
        end_reason=EndReason.FAILED,
        ended_at=session.created_at,
        host="gone",
    )
    call_id = str(call.public_id)
    for type, playback in (
        ("call.playback.started", "p-done"),
        ("call.playback.finished", "p-done"),
        ("call.playback.started", "p-open"),
    ):
        event_emit(
            environment=tenant.test,
            type=type,
            data={"callId": call_id, "playbackId": playback, "assetId": "a"},
            session_public_id=session.public_id,
        )

    hooks.call_reaped(call.pk)
    hooks.call_reaped(call.pk)  # a second reap finds nothing left open

    finished = Event.objects.filter(
        type="call.playback.finished", data__callId=call_id
    ).order_by("id")
    assert [(e.data["playbackId"], e.data.get("reason")) for e in finished] == [
        ("p-done", None),
        ("p-open", "call_ended"),
    ]


def test_an_asset_whose_worker_died_is_decoded_again_by_the_sweep(
    tenant: Tenant, media_root: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """A worker killed mid-decode leaves the asset `processing`: past the deadline the
    sweep queues it again and it becomes ready; one stuck three times as long fails."""
    from datetime import timedelta

    from django.utils import timezone

    settings.ASSET_STUCK_AFTER_S = 60
    lost = _processing_asset(tenant, monkeypatch)  # its task died with the worker
    hopeless = _processing_asset(tenant, monkeypatch)
    fresh = _processing_asset(tenant, monkeypatch)
    now = timezone.now()
    AudioAsset.objects.filter(pk=lost.pk).update(updated_at=now - timedelta(seconds=90))
    AudioAsset.objects.filter(pk=hopeless.pk).update(
        updated_at=now - timedelta(seconds=200)
    )

    assert services.assets_sweep_stuck() == {"requeued": 1, "failed": 1}

    lost.refresh_from_db()
    hopeless.refresh_from_db()
    fresh.refresh_from_db()
    assert lost.status == AssetStatus.READY and (lost.duration_ms or 0) > 0
    assert (hopeless.status, hopeless.error_code) == (
        AssetStatus.FAILED,
        "decode_interrupted",
    )
    assert fresh.status == AssetStatus.PROCESSING  # not late: left to its own task
    failed = Event.objects.filter(type="asset.failed").last()
    assert failed is not None and failed.data["id"] == str(hopeless.public_id)
