"""Staff see recordings in the admin, listen to them, and purge them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage

from conftest import Tenant
from recordings.models import Recording
from recordings.tests.conftest import recorded_call

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(client: Any) -> Any:
    user = get_user_model().objects.create_superuser(
        "staff", "staff@example.com", "pw-staff-123"
    )
    client.force_login(user)
    return client


def test_staff_list_listen_to_and_purge_recordings(
    staff_client: Any, client: Any, tenant: Tenant, settings: Any
) -> None:
    call = recorded_call(tenant.test, seconds=1.5)
    recording = Recording.objects.get(call=call, kind="inbound")

    listing = staff_client.get("/admin/recordings/recording/").content.decode()
    assert str(recording.public_id) in listing
    assert (
        "inbound" in listing and "1.5 s" in listing and str(call.public_id) in listing
    )

    page = staff_client.get(f"/admin/recordings/recording/{recording.pk}/change/")
    audio_url = f"/admin/recordings/recording/{recording.pk}/audio/"
    assert f'<audio controls preload="none" src="{audio_url}">' in page.content.decode()
    audio = staff_client.get(audio_url)
    assert audio.status_code == 200 and audio["Content-Type"] == "audio/wav"
    with default_storage.open(recording.file_name, "rb") as stored:
        assert b"".join(audio.streaming_content) == stored.read()

    response = staff_client.post(
        "/admin/recordings/recording/",
        {
            "action": "purge_selected",
            "_selected_action": [r.pk for r in Recording.objects.filter(call=call)],
        },
    )
    assert response.status_code == 302
    assert not Recording.objects.exists()
    assert not list(Path(settings.MEDIA_ROOT).rglob("*.wav"))


def test_the_audio_view_is_for_staff_only(client: Any, tenant: Tenant) -> None:
    call = recorded_call(tenant.test)
    recording = Recording.objects.get(call=call, kind="mixed")
    response = client.get(f"/admin/recordings/recording/{recording.pk}/audio/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    get_user_model().objects.create_user("member", "m@example.com", "pw-member-123")
    client.login(username="member", password="pw-member-123")
    response = client.get(f"/admin/recordings/recording/{recording.pk}/audio/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
