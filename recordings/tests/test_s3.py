"""Recordings on S3 through django-storages, against a real S3-compatible server."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
import soundfile
from django.core.files.storage import storages
from django.utils import timezone
from moto.server import ThreadedMotoServer
from rest_framework.test import APIClient
from storages.backends.s3 import S3Storage

from conftest import Tenant
from recordings import services
from recordings.models import Recording
from recordings.tests.conftest import recorded_call

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "switchboard-recordings"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a loopback port, for the duration of this module."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, settings: Any) -> Any:
    """Default storage switched to S3 (as STORAGE_BACKEND=s3 configures it)."""
    settings.AWS_STORAGE_BUCKET_NAME = BUCKET
    settings.AWS_S3_ENDPOINT_URL = s3_endpoint
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.AWS_ACCESS_KEY_ID = "testing"
    settings.AWS_SECRET_ACCESS_KEY = "testing"
    settings.AWS_DEFAULT_ACL = None
    settings.AWS_QUERYSTRING_AUTH = True
    settings.AWS_QUERYSTRING_EXPIRE = 300
    settings.AWS_S3_FILE_OVERWRITE = False
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    # Changing STORAGES makes Django rebuild default_storage from these settings.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage"},
    }
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def keys(client: Any) -> list[str]:
    listing = client.list_objects_v2(Bucket=BUCKET)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_recordings_are_uploaded_served_by_signed_url_and_purged_on_s3(
    s3: Any, tenant: Tenant, api: APIClient, settings: Any
) -> None:
    assert isinstance(storages["default"], S3Storage)
    call = recorded_call(tenant.test)
    prefix = f"env/{tenant.test.public_id}/recordings/{call.public_id}/"
    assert keys(s3) == [
        prefix + "inbound.wav",
        prefix + "mixed.wav",
        prefix + "outbound.wav",
    ]
    recording = Recording.objects.get(call=call, kind="outbound")
    stored = s3.get_object(Bucket=BUCKET, Key=recording.file_name)["Body"].read()
    assert len(stored) == recording.size_bytes

    response = api.get(f"/api/v1/recordings/{recording.public_id}/audio")
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(settings.AWS_S3_ENDPOINT_URL + f"/{BUCKET}/{prefix}")
    query = parse_qs(urlsplit(location).query)
    # Signed and short-lived (SigV2 says when it expires, SigV4 for how long).
    assert "Signature" in query or "X-Amz-Signature" in query
    if "Expires" in query:
        assert 0 < int(query["Expires"][0]) - time.time() <= 300
    else:
        assert query["X-Amz-Expires"] == ["300"]
    downloaded = httpx.get(location)
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"] == "audio/wav"
    assert downloaded.content == stored
    info = soundfile.info(io.BytesIO(downloaded.content))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")

    Recording.objects.filter(call=call).exclude(kind="mixed").update(
        created_at=timezone.now() - timedelta(days=31),
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    assert services.recordings_purge_expired(batch_size=10) == 2
    assert keys(s3) == [prefix + "mixed.wav"]

    deleted = api.delete(f"/api/v1/recordings/{Recording.objects.get().public_id}")
    assert deleted.status_code == 200
    assert keys(s3) == []
