"""A real server process killed mid-call: the reaper still finalises its recordings."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from django.utils import timezone

from audio.codecs import float_to_pcm16
from calls import hosts
from calls.carriers.simulator import talker_signal
from calls.models import Call, EngineHost
from calls.tests.conftest import wait_for
from config.celery_app import app as celery_app
from conftest import Tenant
from recordings.tests.conftest import stored_wav, wait_for_recordings
from tests.processes import celery_worker, daphne

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"SIM_DIAL_MS": "20", "SIM_RING_MS": "50"}


def _active_talker_call(client: httpx.Client) -> tuple[str, str]:
    session_id = client.post("/api/v1/sessions", json={"displayName": "k"}).json()[
        "data"
    ]["sessionId"]
    client.post(f"/api/v1/sessions/{session_id}/connect").raise_for_status()
    client.post(f"/api/v1/test-helpers/sessions/{session_id}/scan").raise_for_status()
    created = client.post(
        f"/api/v1/sessions/{session_id}/calls",
        json={"to": "15550000002@s.whatsapp.net"},
    )
    assert created.status_code == 201, created.text
    call_id = created.json()["data"]["callId"]
    path = f"/api/v1/sessions/{session_id}/calls/{call_id}"
    wait_for(lambda: client.get(path).json()["data"]["state"] == "active", 10)
    return session_id, call_id


def test_a_call_on_a_killed_server_is_recorded_up_to_the_crash(
    tenant: Tenant, tmp_path: Path, settings: Any, spool_dir: Path
) -> None:
    """SIGKILL the Daphne process hosting a call, run the reaper: recordings appear.

    With REDIS_URL set, the finalisation the reaper queues runs in a real Celery worker
    process; embedded, the reaper's process runs it. Both read the spool the killed
    server wrote (shared, as the production spool volume is).
    """
    shared = {
        "RECORDING_SPOOL_DIR": str(spool_dir),
        "SWITCHBOARD_VAR_DIR": str(tmp_path / "var"),
    }
    # Where the worker's test settings put default storage, so this process reads it.
    settings.MEDIA_ROOT = tmp_path / "var" / "test-media"
    with ExitStack() as stack:
        server = stack.enter_context(daphne(tmp_path, "a", **FAST, **shared))
        if settings.REDIS_URL:
            stack.enter_context(
                celery_worker(
                    tmp_path,
                    RECORDING_SPOOL_DIR=shared["RECORDING_SPOOL_DIR"],
                    SWITCHBOARD_VAR_DIR=shared["SWITCHBOARD_VAR_DIR"],
                )
            )
            celery_app.conf.task_always_eager = False
        client = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {tenant.test_key}"},
            timeout=20,
        )
        _, call_id = _active_talker_call(client)
        audio = spool_dir / call_id / "call.wav"
        # Something written (the recorders write a second at a time).
        wait_for(lambda: audio.exists() and audio.stat().st_size > 44, 10)
        time.sleep(0.3)
        server.kill()

        call = Call.objects.get(public_id=call_id)
        assert call.state == "active"
        # The killed process no longer beats; rather than wait out the staleness
        # window, its last beat is made old.
        EngineHost.objects.filter(host_id=call.host).update(
            last_seen=timezone.now() - timedelta(minutes=5)
        )
        assert hosts.reap_orphaned_calls() == 1
        call.refresh_from_db()
        assert (call.state, call.end_reason) == ("ended", "failed")

        recordings = wait_for_recordings(call, timeout=30)
        log = server.output()
    assert sorted(recordings) == ["inbound", "mixed", "outbound"], log
    durations = {r.duration_ms for r in recordings.values()}
    assert len(durations) == 1
    duration_ms = durations.pop()
    assert duration_ms > 0 and duration_ms % 20 == 0  # whole frames, up to a second
    for recording in recordings.values():
        samples, info = stored_wav(recording)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert len(samples) == duration_ms * 16
    heard, _ = stored_wav(recordings["inbound"])
    np.testing.assert_array_equal(heard, float_to_pcm16(talker_signal(0, len(heard))))
    said, _ = stored_wav(recordings["outbound"])
    assert not said.any()
    wait_for(lambda: not (spool_dir / call_id).exists())
    if settings.REDIS_URL:
        assert "recordings.finalise" in (tmp_path / "celery.log").read_text()
