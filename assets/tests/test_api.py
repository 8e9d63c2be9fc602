"""Audio assets over the REST API: every fixture uploaded, its outcome, storage, events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from django.core.files.storage import default_storage

from assets.models import AudioAsset
from assets.tests.conftest import ASSETS, FIXTURES, stored_files, upload
from conftest import Tenant, is_problem
from events.models import Event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("decode_in_process"),
]

ASSET_FIELDS = {
    "id",
    "filename",
    "contentType",
    "sizeBytes",
    "durationMs",
    "sampleRate",
    "channels",
    "status",
    "error",
    "createdAt",
}

# (file, content type, original rate, channels, seconds). Seconds are ffprobe's, except
# the MP3's: a gapless decoder drops the encoder's delay and padding (test_decoding.py).
GOOD = [
    ("speech_16k_mono_s16.wav", "audio/wav", 16000, 1, 9.907688),
    ("speech_48k_float32.wav", "audio/wav", 48000, 1, 9.907667),
    ("speech_8k_mulaw.wav", "audio/wav", 8000, 1, 9.907625),
    ("speech_44k1_stereo.flac", "audio/flac", 44100, 2, 9.907664),
    ("speech_32k_mono.aiff", "audio/aiff", 32000, 1, 9.907688),
    ("speech_48k_stereo.ogg", "audio/ogg", 48000, 2, 9.907667),
    ("speech_48k_mono.opus", "audio/opus", 48000, 1, 9.914167),
    ("speech_22k_mono.mp3", "audio/mpeg", 22050, 1, 9.907664),
    ("speech_16k_mono.m4a", "audio/mp4", 16000, 1, 9.908000),
]
# Refused at upload: (file, status, code, words the detail must contain).
REFUSED = [
    ("bad_random_bytes.wav", 415, "unsupported_format", "Accepted formats: WAV"),
    ("bad_text.mp3", 415, "unsupported_format", "Accepted formats: WAV"),
    ("bad_zero_channels.wav", 400, "invalid_header", "zero channels"),
]
# Accepted, then judged by the decoder: (file, final status, error words).
DECODED_BROKEN = [
    ("bad_lying_header.wav", "failed", "only 0.5 ms of audio"),
    ("bad_truncated.mp3", "ready", None),
]


def test_every_fixture_has_a_documented_outcome() -> None:
    covered = {row[0] for row in GOOD + REFUSED + DECODED_BROKEN}
    on_disk = {path.name for path in FIXTURES.iterdir() if path.suffix != ".md"}
    assert covered == on_disk


def _events(tenant: Tenant, type: str) -> list[Event]:
    return list(Event.objects.filter(environment=tenant.test, type=type).order_by("id"))


@pytest.mark.parametrize(("name", "content_type", "rate", "channels", "seconds"), GOOD)
def test_good_fixture_becomes_ready_with_its_true_duration(
    tenant: Tenant,
    media_root: Path,
    name: str,
    content_type: str,
    rate: int,
    channels: int,
    seconds: float,
) -> None:
    client = tenant.client()
    # The name and Content-Type lie on purpose: only the bytes count.
    response = upload(
        client, FIXTURES / name, name=f"greeting-{name}", content_type="text/plain"
    )

    assert response.status_code == 201, response.content
    created = response.json()["data"]
    assert set(created) == ASSET_FIELDS
    got = client.get(f"{ASSETS}/{created['id']}").json()["data"]
    assert got["status"] == "ready", got
    assert got["filename"] == f"greeting-{name}"
    assert got["contentType"] == content_type
    assert got["sizeBytes"] == (FIXTURES / name).stat().st_size
    assert got["sampleRate"] == rate
    assert got["channels"] == channels
    assert abs(got["durationMs"] - seconds * 1000) <= 50
    assert got["error"] is None
    assert got["createdAt"].endswith("Z")

    asset = AudioAsset.objects.get(public_id=got["id"])
    prefix = f"env/{tenant.test.public_id}/assets/{got['id']}/"
    assert asset.original_name.startswith(prefix)
    assert asset.audio_name == prefix + "audio.wav"
    assert (media_root / asset.original_name).read_bytes() == (
        FIXTURES / name
    ).read_bytes()
    info = sf.info(str(media_root / asset.audio_name))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert abs(info.frames - got["durationMs"] * 16) <= 16

    ready = _events(tenant, "asset.ready")
    assert [event.data for event in ready] == [got]
    assert not _events(tenant, "asset.failed")


@pytest.mark.parametrize(("name", "status", "code", "words"), REFUSED)
def test_broken_fixture_is_refused_at_upload_and_nothing_is_stored(
    tenant: Tenant, media_root: Path, name: str, status: int, code: str, words: str
) -> None:
    response = upload(
        tenant.client(), FIXTURES / name, name="voice.wav", content_type="audio/wav"
    )

    body = is_problem(response, status, code)
    assert words in body["detail"]
    assert body["param"] == "audio"
    if status == 415:
        assert "MP3" in body["acceptedFormats"]
    assert not AudioAsset.objects.exists()
    assert stored_files(media_root) == []
    assert not Event.objects.filter(type__startswith="asset.").exists()


def test_header_promising_4_gib_fails_with_a_clear_error_and_keeps_no_audio(
    tenant: Tenant, media_root: Path
) -> None:
    client = tenant.client()
    created = upload(client, FIXTURES / "bad_lying_header.wav").json()["data"]

    got = client.get(f"{ASSETS}/{created['id']}").json()["data"]
    assert got["status"] == "failed"
    assert "only 0.5 ms of audio" in got["error"]
    assert got["durationMs"] is None
    assert stored_files(media_root) == []
    failed = _events(tenant, "asset.failed")
    assert [event.data for event in failed] == [got]
    assert not _events(tenant, "asset.ready")


def test_truncated_mp3_is_ready_with_what_decoded_not_what_its_header_promised(
    tenant: Tenant, media_root: Path
) -> None:
    client = tenant.client()
    created = upload(client, FIXTURES / "bad_truncated.mp3").json()["data"]

    got = client.get(f"{ASSETS}/{created['id']}").json()["data"]
    assert got["status"] == "ready"
    assert 2200 <= got["durationMs"] <= 2700
    asset = AudioAsset.objects.get(public_id=got["id"])
    frames = sf.info(str(media_root / asset.audio_name)).frames
    assert abs(frames - got["durationMs"] * 16) <= 16


def test_audio_longer_than_the_maximum_duration_fails(tenant: Tenant, settings) -> None:
    settings.ASSET_MAX_DURATION_S = 5
    client = tenant.client()
    created = upload(client, FIXTURES / "speech_16k_mono_s16.wav").json()["data"]

    got = client.get(f"{ASSETS}/{created['id']}").json()["data"]
    assert got["status"] == "failed"
    assert got["error"] == "The audio is longer than the 5 s limit."


def test_normalised_audio_is_the_decoded_file_at_16_bit(
    tenant: Tenant, media_root: Path
) -> None:
    created = upload(tenant.client(), FIXTURES / "speech_16k_mono_s16.wav").json()[
        "data"
    ]

    asset = AudioAsset.objects.get(public_id=created["id"])
    stored, _ = sf.read(str(media_root / asset.audio_name), dtype="int16")
    original, _ = sf.read(str(FIXTURES / "speech_16k_mono_s16.wav"), dtype="int16")
    # 16 kHz mono 16-bit in, so normalising changes nothing but a rounding step.
    assert np.abs(stored.astype(int) - original.astype(int)).max() <= 1


def test_request_that_is_not_multipart_is_415_naming_what_is_accepted(
    tenant: Tenant,
) -> None:
    body = is_problem(
        tenant.client().post(
            ASSETS,
            (FIXTURES / "speech_16k_mono_s16.wav").read_bytes(),
            content_type="audio/wav",
        ),
        415,
        "unsupported_media_type",
    )
    assert "multipart/form-data" in body["detail"]
    assert not AudioAsset.objects.exists()


def test_upload_without_the_audio_field_is_400(tenant: Tenant) -> None:
    body = is_problem(
        tenant.client().post(ASSETS, {"note": "hi"}, format="multipart"),
        400,
        "validation_error",
    )
    assert body["param"] == "audio"


def test_file_in_another_field_is_400(tenant: Tenant, media_root: Path) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    sound = SimpleUploadedFile(
        "a.wav", (FIXTURES / "speech_16k_mono_s16.wav").read_bytes()
    )
    body = is_problem(
        tenant.client().post(ASSETS, {"file": sound}, format="multipart"),
        400,
        "validation_error",
    )
    assert body["param"] == "audio"
    assert stored_files(media_root) == []


def test_empty_file_is_400(tenant: Tenant) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    body = is_problem(
        tenant.client().post(
            ASSETS, {"audio": SimpleUploadedFile("a.wav", b"")}, format="multipart"
        ),
        400,
        "validation_error",
    )
    assert body["param"] == "audio"
    assert not AudioAsset.objects.exists()


def test_list_is_newest_first_paginated_and_filters_by_status(tenant: Tenant) -> None:
    client = tenant.client()
    ids = [
        upload(client, FIXTURES / name).json()["data"]["id"]
        for name in (
            "speech_16k_mono_s16.wav",
            "bad_lying_header.wav",
            "speech_8k_mulaw.wav",
        )
    ]

    first = client.get(ASSETS, {"limit": 2}).json()
    second = client.get(ASSETS, {"limit": 2, "cursor": first["nextCursor"]}).json()
    assert [item["id"] for item in first["data"] + second["data"]] == ids[::-1]
    assert second["nextCursor"] is None
    assert set(first["data"][0]) == ASSET_FIELDS
    failed = client.get(ASSETS, {"status": "failed"}).json()["data"]
    assert [item["id"] for item in failed] == [ids[1]]
    is_problem(client.get(ASSETS, {"status": "nope"}), 400, "validation_error")


def test_delete_removes_the_row_and_every_file(
    tenant: Tenant, media_root: Path
) -> None:
    client = tenant.client()
    kept = upload(client, FIXTURES / "speech_8k_mulaw.wav").json()["data"]
    gone = upload(client, FIXTURES / "speech_44k1_stereo.flac").json()["data"]
    assert len(stored_files(media_root)) == 4

    response = client.delete(f"{ASSETS}/{gone['id']}")

    assert response.status_code == 200
    assert response.json()["data"]["id"] == gone["id"]
    is_problem(client.get(f"{ASSETS}/{gone['id']}"), 404, "asset_not_found")
    is_problem(client.delete(f"{ASSETS}/{gone['id']}"), 404, "asset_not_found")
    remaining = stored_files(media_root)
    assert len(remaining) == 2
    assert all(f"/assets/{kept['id']}/" in name for name in remaining)
    assert not (
        media_root / f"env/{tenant.test.public_id}/assets/{gone['id']}"
    ).exists()


def test_same_idempotency_key_replays_the_upload_without_a_second_asset(
    tenant: Tenant,
) -> None:
    client = tenant.client()
    path = FIXTURES / "speech_8k_mulaw.wav"
    first = upload(client, path, HTTP_IDEMPOTENCY_KEY="up-1")
    again = upload(client, path, HTTP_IDEMPOTENCY_KEY="up-1")
    other = upload(
        client, FIXTURES / "speech_16k_mono_s16.wav", HTTP_IDEMPOTENCY_KEY="up-1"
    )

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    is_problem(other, 409, "idempotency_key_reused")
    assert AudioAsset.objects.count() == 1


def test_decoding_is_queued_after_the_row_commits() -> None:
    # The task runs only once the asset row is visible to other connections.
    import inspect

    from assets import services

    source = inspect.getsource(services.asset_create)
    assert "transaction.on_commit" in source


def test_storage_layout_is_per_environment(tenant: Tenant, media_root: Path) -> None:
    test_asset = upload(tenant.client("test"), FIXTURES / "speech_8k_mulaw.wav").json()[
        "data"
    ]
    live_asset = upload(tenant.client("live"), FIXTURES / "speech_8k_mulaw.wav").json()[
        "data"
    ]

    files = stored_files(media_root)
    assert f"env/{tenant.test.public_id}/assets/{test_asset['id']}/audio.wav" in files
    assert f"env/{tenant.live.public_id}/assets/{live_asset['id']}/audio.wav" in files
    assert default_storage.exists(
        f"env/{tenant.live.public_id}/assets/{live_asset['id']}/original.wav"
    )
