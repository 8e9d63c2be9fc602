"""The production shape: a real ``celery -A config worker`` decodes uploads off the request path."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from assets.tests.conftest import ASSETS, FIXTURES, stored_files, upload
from conftest import Tenant
from events.models import Event
from tests.processes import BIN, ROOT, service_env

pytestmark = [
    pytest.mark.production_shape,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.REDIS_URL, reason="needs a Celery broker (REDIS_URL)"
    ),
]


@pytest.fixture
def decode_worker(tmp_path: Path, settings) -> Iterator[subprocess.Popen[bytes]]:
    """A Celery worker of this run, alone on a queue of its own, sharing our storage."""
    queue = f"{settings.REDIS_KEY_PREFIX}-assets-{uuid.uuid4().hex[:8]}"
    settings.ASSET_DECODE_QUEUE = queue
    # The worker runs config.settings.test, whose MEDIA_ROOT is <var dir>/test-media.
    settings.MEDIA_ROOT = tmp_path / "test-media"
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "--queues",
                queue,
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=service_env(SWITCHBOARD_VAR_DIR=str(tmp_path)),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        print(log.read_text(errors="replace")[-3000:])


def wait_status(client: APIClient, asset_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        asset = client.get(f"{ASSETS}/{asset_id}").json()["data"]
        if asset["status"] != "processing":
            return asset
        if time.monotonic() > deadline:
            raise AssertionError(f"asset {asset_id} still processing after {timeout} s")
        time.sleep(0.1)


def test_real_worker_decodes_uploads_to_ready_or_failed(
    tenant: Tenant, decode_worker: subprocess.Popen[bytes]
) -> None:
    from config.celery_app import app

    assert not app.conf.task_always_eager
    client = tenant.client()

    good = upload(client, FIXTURES / "speech_44k1_stereo.flac")
    bad = upload(client, FIXTURES / "bad_lying_header.wav")

    # The request only stored the file and queued the work.
    assert good.status_code == bad.status_code == 201
    assert good.json()["data"]["status"] == "processing"
    assert good.json()["data"]["durationMs"] is None
    ready = wait_status(client, good.json()["data"]["id"])
    failed = wait_status(client, bad.json()["data"]["id"])
    assert decode_worker.poll() is None, "the worker died"
    assert ready["status"] == "ready"
    assert abs(ready["durationMs"] - 9907.664) <= 50
    assert (ready["sampleRate"], ready["channels"]) == (44100, 2)
    assert failed["status"] == "failed"
    assert "only 0.5 ms of audio" in failed["error"]
    events = {e.type: e.data for e in Event.objects.filter(type__startswith="asset.")}
    assert events == {"asset.ready": ready, "asset.failed": failed}
    files = stored_files(Path(settings.MEDIA_ROOT))
    prefix = f"env/{tenant.test.public_id}/assets/{ready['id']}/"
    assert files == [prefix + "audio.wav", prefix + "original.flac"]
