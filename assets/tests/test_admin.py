"""Staff see assets with their status, duration and size, and can listen to them."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from assets.models import AudioAsset
from assets.tests.conftest import FIXTURES, stored_files, upload
from conftest import Tenant

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("decode_in_process"),
]


@pytest.fixture
def asset(tenant: Tenant) -> AudioAsset:
    created = upload(tenant.client(), FIXTURES / "speech_44k1_stereo.flac")
    return AudioAsset.objects.get(public_id=created.json()["data"]["id"])


def test_list_shows_status_duration_size_and_a_player(
    admin_client: Client, asset: AudioAsset
) -> None:
    page = admin_client.get(reverse("admin:assets_audioasset_changelist"))

    html = page.content.decode()
    assert page.status_code == 200
    assert "speech_44k1_stereo.flac" in html
    assert "ready" in html
    assert "0:09.908" in html
    assert "0.23 MiB" in html
    audio_url = reverse("admin:assets_audioasset_audio", args=[asset.pk])
    assert f'<audio controls preload="none" src="{audio_url}"' in html


def test_player_serves_the_normalised_wav_to_staff_only(
    admin_client: Client, client: Client, asset: AudioAsset, media_root: Path
) -> None:
    url = reverse("admin:assets_audioasset_audio", args=[asset.pk])

    response = admin_client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    body = response.getvalue()
    assert body == (media_root / asset.audio_name).read_bytes()
    assert body[:4] == b"RIFF"
    anonymous = client.get(url)
    assert anonymous.status_code == 302
    assert "/login/" in anonymous["Location"]


def test_detail_page_is_read_only_and_shows_the_error_of_a_failed_asset(
    admin_client: Client, tenant: Tenant
) -> None:
    created = upload(tenant.client(), FIXTURES / "bad_lying_header.wav")
    failed = AudioAsset.objects.get(public_id=created.json()["data"]["id"])

    page = admin_client.get(reverse("admin:assets_audioasset_change", args=[failed.pk]))

    assert page.status_code == 200
    assert "only 0.5 ms of audio" in page.content.decode()
    assert "empty_audio" in page.content.decode()
    assert admin_client.get(reverse("admin:assets_audioasset_add")).status_code == 403


def test_deleting_in_the_admin_removes_the_files(
    admin_client: Client, asset: AudioAsset, media_root: Path
) -> None:
    assert len(stored_files(media_root)) == 2

    response = admin_client.post(
        reverse("admin:assets_audioasset_changelist"),
        {"action": "delete_with_files", "_selected_action": [asset.pk]},
    )

    assert response.status_code == 302
    assert not AudioAsset.objects.exists()
    assert stored_files(media_root) == []
