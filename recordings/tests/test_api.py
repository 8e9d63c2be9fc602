"""The recordings API (DESIGN §8): list, get, download, delete; tenants kept apart."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import soundfile
from django.core.files.storage import default_storage
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import Tenant, is_problem
from recordings.models import Recording
from recordings.tests.conftest import recorded_call

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = {
    "recordingId",
    "callId",
    "sessionId",
    "kind",
    "contentType",
    "sampleRate",
    "channels",
    "durationMs",
    "sizeBytes",
    "createdAt",
    "expiresAt",
}


def test_a_call_s_recordings_are_listed_newest_first_with_their_fields(
    tenant: Tenant, api: APIClient
) -> None:
    older = recorded_call(tenant.test)
    call = recorded_call(tenant.test, seconds=1.5)
    listed = api.get(f"/api/v1/recordings?callId={call.public_id}")
    assert listed.status_code == 200
    body = listed.json()
    assert body["nextCursor"] is None
    rows = body["data"]
    assert [r["kind"] for r in rows] == ["mixed", "outbound", "inbound"]
    first = rows[0]
    assert set(first) == FIELDS
    assert first["callId"] == str(call.public_id)
    assert first["sessionId"] == str(call.session.public_id)
    assert first["contentType"] == "audio/wav"
    assert (first["sampleRate"], first["channels"]) == (16000, 1)
    assert first["durationMs"] == 1500
    assert first["sizeBytes"] == 44 + 2 * 24000
    assert first["createdAt"].endswith("Z") and first["expiresAt"].endswith("Z")

    everything = api.get("/api/v1/recordings?limit=4").json()
    assert len(everything["data"]) == 4 and everything["nextCursor"]
    rest = api.get(f"/api/v1/recordings?limit=4&cursor={everything['nextCursor']}")
    ids = [r["recordingId"] for r in everything["data"] + rest.json()["data"]]
    assert len(set(ids)) == 6
    assert {r["callId"] for r in rest.json()["data"]} == {str(older.public_id)}

    inbound = api.get("/api/v1/recordings?kind=inbound").json()["data"]
    assert [r["callId"] for r in inbound] == [str(call.public_id), str(older.public_id)]
    detail = api.get(f"/api/v1/recordings/{first['recordingId']}")
    assert detail.status_code == 200 and detail.json()["data"] == first


def test_bad_filters_are_problems(tenant: Tenant, api: APIClient) -> None:
    is_problem(api.get("/api/v1/recordings?kind=stereo"), 400, "validation_error")
    is_problem(api.get("/api/v1/recordings?callId=nope"), 400, "validation_error")
    is_problem(
        api.get(f"/api/v1/recordings?callId={uuid.uuid4()}"), 404, "call_not_found"
    )


def test_the_audio_route_streams_the_wav(tenant: Tenant, api: APIClient) -> None:
    call = recorded_call(tenant.test)
    recording = Recording.objects.get(call=call, kind="inbound")
    response = api.get(
        f"/api/v1/recordings/{recording.public_id}/audio", HTTP_ACCEPT="audio/wav"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    data = response.getvalue()
    assert int(response["Content-Length"]) == len(data) == recording.size_bytes
    with default_storage.open(recording.file_name, "rb") as stored:
        assert data == stored.read()
    info = soundfile.info(io.BytesIO(data))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")


def test_delete_removes_the_file_and_the_row(
    tenant: Tenant, api: APIClient, settings: Any
) -> None:
    call = recorded_call(tenant.test)
    recording = Recording.objects.get(call=call, kind="mixed")
    path = Path(settings.MEDIA_ROOT) / recording.file_name
    assert path.exists()
    deleted = api.delete(f"/api/v1/recordings/{recording.public_id}")
    assert deleted.status_code == 200
    assert deleted.json()["data"]["recordingId"] == str(recording.public_id)
    assert not path.exists()
    assert not Recording.objects.filter(pk=recording.pk).exists()
    is_problem(
        api.get(f"/api/v1/recordings/{recording.public_id}"), 404, "recording_not_found"
    )
    is_problem(api.delete(f"/api/v1/recordings/{recording.public_id}"), 404)
    snapshot = api.get(
        f"/api/v1/sessions/{call.session.public_id}/calls/{call.public_id}"
    ).json()["data"]
    assert sorted(r["kind"] for r in snapshot["recordings"]) == ["inbound", "outbound"]


def test_an_expired_recording_is_gone_even_before_the_purge(
    tenant: Tenant, api: APIClient
) -> None:
    call = recorded_call(tenant.test)
    recording = Recording.objects.get(call=call, kind="inbound")
    Recording.objects.filter(pk=recording.pk).update(
        created_at=timezone.now() - timedelta(days=31),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    is_problem(api.get(f"/api/v1/recordings/{recording.public_id}"), 404)
    is_problem(api.get(f"/api/v1/recordings/{recording.public_id}/audio"), 404)
    listed = api.get(f"/api/v1/recordings?callId={call.public_id}").json()["data"]
    assert [r["kind"] for r in listed] == ["mixed", "outbound"]


@pytest.mark.parametrize("who", ["outsider", "other environment"])
def test_someone_else_s_recordings_are_not_found_on_every_route(
    tenant: Tenant, outsider: Tenant, who: str
) -> None:
    call = recorded_call(tenant.test)
    recording = Recording.objects.get(call=call, kind="mixed")
    stranger = outsider.client() if who == "outsider" else tenant.client("live")
    base = f"/api/v1/recordings/{recording.public_id}"
    for response in (
        stranger.get(base),
        stranger.get(base + "/audio"),
        stranger.delete(base),
        stranger.get(f"/api/v1/recordings?callId={call.public_id}"),
    ):
        is_problem(response, 404)
    assert stranger.get("/api/v1/recordings").json()["data"] == []
    assert Recording.objects.filter(pk=recording.pk).exists()


def test_recordings_need_an_api_key(anon: APIClient) -> None:
    is_problem(anon.get("/api/v1/recordings"), 401, "missing_api_key")
