"""Audio assets in the dashboard: upload, status, listen, delete, play into a call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from assets.models import AudioAsset
from calls.models import Call, CallState
from calls.runtime import control
from calls.tests.conftest import wait_for
from conftest import Tenant
from dashboard.tests.conftest import SPEECH_WAV, paired_session
from events.models import Event

JSON = {"HTTP_ACCEPT": "application/json"}
ACCEPT_JSON = "application/json"


@pytest.fixture(autouse=True)
def decode_in_process() -> Iterator[None]:
    """Decode uploads in this process, as the embedded default does."""
    from config.celery_app import app as celery_app

    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


def speech(name: str = "hello.wav") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, SPEECH_WAV.read_bytes(), content_type="audio/wav")


@pytest.fixture
def upload(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """POST a file as the page's script does; decoding (queued on commit) runs too."""

    def post(client: Client, file: Any, **extra: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/dashboard/assets/upload", {"audio": file}, **extra)

    return post


@pytest.mark.django_db
class TestAssets:
    def test_an_upload_is_decoded_and_listed_with_a_player(
        self, upload: Callable[..., Any], owner: Client, tenant: Tenant
    ) -> None:
        response = upload(owner, speech(), **JSON)
        assert response.status_code == 201, response.content
        data = response.json()["asset"]
        assert data["filename"] == "hello.wav" and data["status"] == "processing"
        asset = AudioAsset.objects.get(environment=tenant.test)
        assert asset.status == "ready" and asset.duration_ms == 9908
        page = owner.get("/dashboard/assets/").content.decode()
        audio = f"/dashboard/assets/{asset.public_id}/audio"
        assert "hello.wav" in page and f'src="{audio}"' in page
        assert '<progress id="upload-progress"' in page
        wav = owner.get(audio)
        assert wav["Content-Type"] == "audio/wav"
        assert wav.getvalue()[:4] == b"RIFF"
        rows = owner.get("/dashboard/assets/rows").content.decode()
        assert "hello.wav" in rows and "<html" not in rows

    def test_a_form_upload_without_script_lands_back_on_the_page(
        self, upload: Callable[..., Any], owner: Client
    ) -> None:
        response = upload(owner, speech(), follow=True)
        assert "Uploaded “hello.wav”; decoding it now." in response.content.decode()

    def test_a_file_that_is_not_audio_is_refused_and_not_kept(
        self, upload: Callable[..., Any], owner: Client
    ) -> None:
        text = SimpleUploadedFile("song.mp3", b"just some text " * 400)
        response = upload(owner, text, **JSON)
        assert response.status_code == 415
        assert "not an audio format we accept" in response.json()["error"]["detail"]
        assert not AudioAsset.objects.exists()

    def test_an_upload_needs_a_file(
        self, upload: Callable[..., Any], owner: Client
    ) -> None:
        response = owner.post("/dashboard/assets/upload", {}, HTTP_ACCEPT=ACCEPT_JSON)
        assert response.status_code == 400
        assert response.json()["error"]["detail"] == "Choose an audio file to upload."

    def test_an_upload_is_protected_against_cross_site_posts(
        self, upload: Callable[..., Any], tenant: Tenant
    ) -> None:
        from dashboard.tests.conftest import browser_for, make_user

        strict = browser_for(make_user("o", tenant, "owner"), tenant.test)
        strict.handler.enforce_csrf_checks = True
        assert upload(strict, speech()).status_code == 403
        assert not AudioAsset.objects.exists()

    def test_delete_removes_the_asset(
        self, upload: Callable[..., Any], owner: Client, tenant: Tenant
    ) -> None:
        upload(owner, speech(), **JSON)
        asset = AudioAsset.objects.get()
        page = owner.get("/dashboard/assets/").content.decode()
        assert 'data-confirm="Delete “hello.wav”?"' in page
        owner.post(f"/dashboard/assets/{asset.public_id}/delete")
        assert not AudioAsset.objects.exists()

    def test_members_listen_but_cannot_upload_or_delete(
        self, upload: Callable[..., Any], owner: Client, member: Client
    ) -> None:
        upload(owner, speech(), **JSON)
        asset = AudioAsset.objects.get()
        page = member.get("/dashboard/assets/").content.decode()
        assert "hello.wav" in page and 'id="upload-form"' not in page
        assert "Delete" not in page
        assert (
            member.get(f"/dashboard/assets/{asset.public_id}/audio").status_code == 200
        )
        assert upload(member, speech("other.wav")).status_code == 403
        assert (
            member.post(f"/dashboard/assets/{asset.public_id}/delete").status_code
            == 403
        )
        assert AudioAsset.objects.count() == 1

    @pytest.mark.parametrize("action", ["audio", "delete"])
    def test_another_accounts_or_environments_asset_is_not_found(
        self,
        upload: Callable[..., Any],
        owner: Client,
        outsider: Tenant,
        tenant: Tenant,
        action: str,
    ) -> None:
        from dashboard.tests.conftest import browser_for, make_user

        upload(browser_for(make_user("them", outsider, "owner")), speech(), **JSON)
        upload(
            browser_for(make_user("live-me", tenant, "owner"), tenant.live),
            speech(),
            **JSON,
        )
        for asset in AudioAsset.objects.all():
            url = f"/dashboard/assets/{asset.public_id}/{action}"
            response = owner.post(url) if action == "delete" else owner.get(url)
            assert response.status_code == 404
        assert AudioAsset.objects.count() == 2


def test_a_ready_asset_plays_into_a_live_call(
    upload: Callable[..., Any],
    owner: Client,
    tenant: Tenant,
    engine: Any,
    fast_network: Any,
) -> None:
    upload(owner, speech(), **JSON)
    asset = AudioAsset.objects.get()
    call = control.call_place(
        session=paired_session(tenant.test),
        to="15550000001@s.whatsapp.net",
        record=False,
    ).call
    wait_for(lambda: Call.objects.get(pk=call.pk).state == CallState.ACTIVE)
    url = f"/dashboard/calls/{call.session.public_id}/{call.public_id}/"
    page = owner.get(url).content.decode()
    assert f'<option value="{asset.public_id}">hello.wav' in page
    response = owner.post(
        url + "play", {"asset": asset.public_id, "mode": "interrupt"}, follow=True
    )
    assert "Playing into the call." in response.content.decode()
    wait_for(lambda: Event.objects.filter(type="call.playback.started").exists())
