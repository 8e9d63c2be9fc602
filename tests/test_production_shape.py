"""Several real processes on PostgreSQL and Redis: commands cross processes, the reaper works."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from calls.models import Call, CallState, EngineHost
from conftest import Tenant
from tests.processes import celery_worker, daphne, uvicorn_media

pytestmark = [
    pytest.mark.production_shape,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (
            settings.REDIS_URL
            and str(settings.DATABASES["default"]["ENGINE"]).endswith("postgresql")
        ),
        reason="needs several processes sharing PostgreSQL and Redis (CI's second shape)",
    ),
]

FAST = {
    "SIM_DIAL_MS": "20",
    "SIM_RING_MS": "50",
    "ENGINE_HEARTBEAT_S": "1",
    "ENGINE_STALE_AFTER_S": "3",
    "CALL_REAPER_INTERVAL_S": "1",
}


def _wait_state(
    client: httpx.Client, path: str, state: str, timeout: float = 10
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        call = client.get(path).json()["data"]
        if call["state"] == state:
            return call
        if time.monotonic() > deadline:
            raise AssertionError(f"call stayed {call['state']}, expected {state}")
        time.sleep(0.05)


def _ready_session(client: httpx.Client) -> str:
    session_id = client.post("/api/v1/sessions", json={"displayName": "ps"}).json()[
        "data"
    ]["sessionId"]
    client.post(f"/api/v1/sessions/{session_id}/connect").raise_for_status()
    client.post(f"/api/v1/test-helpers/sessions/{session_id}/scan").raise_for_status()
    return session_id


def test_a_command_sent_to_one_process_reaches_the_runtime_in_another(
    tenant: Tenant, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {tenant.test_key}"}
    with daphne(tmp_path, "a", **FAST) as a, daphne(tmp_path, "b", **FAST) as b:
        via_a = httpx.Client(base_url=a.url, headers=headers, timeout=20)
        via_b = httpx.Client(base_url=b.url, headers=headers, timeout=20)
        session_id = _ready_session(via_a)
        created = via_a.post(
            f"/api/v1/sessions/{session_id}/calls",
            json={"to": "15550000001@s.whatsapp.net"},
        )
        assert created.status_code == 201, created.text
        path = f"/api/v1/sessions/{session_id}/calls/{created.json()['data']['callId']}"
        _wait_state(via_b, path, "active")

        call = Call.objects.get(public_id=created.json()["data"]["callId"])
        host_a = EngineHost.objects.get(host_id=call.host)
        assert host_a.pid == a.process.pid

        # Mute needs the live runtime (a call whose host is gone answers 503), so a 200
        # with audioMuted proves the command crossed to process A and back.
        muted = via_b.post(path + "/mute", json={"muted": True})
        assert muted.status_code == 200, muted.text
        assert muted.json()["data"]["audioMuted"] is True

        ended = via_b.post(path + "/end")
        assert ended.status_code == 200, ended.text
        assert ended.json()["data"]["state"] == "ended"
        assert ended.json()["data"]["endReason"] == "completed"
        assert via_a.get(path).json()["data"]["endReason"] == "completed"


def test_the_reaper_ends_the_calls_of_a_killed_process(
    tenant: Tenant, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {tenant.test_key}"}
    with daphne(tmp_path, "a", **FAST) as a, celery_worker(tmp_path, beat=True, **FAST):
        via_a = httpx.Client(base_url=a.url, headers=headers, timeout=20)
        session_id = _ready_session(via_a)
        created = via_a.post(
            f"/api/v1/sessions/{session_id}/calls",
            json={"to": "15550000002@s.whatsapp.net"},
        ).json()["data"]
        path = f"/api/v1/sessions/{session_id}/calls/{created['callId']}"
        _wait_state(via_a, path, "active")
        a.kill()
        killed_at = time.monotonic()

        deadline = killed_at + 60
        while time.monotonic() < deadline:
            call = Call.objects.get(public_id=created["callId"])
            if call.state == CallState.ENDED:
                break
            time.sleep(0.2)
        assert call.state == CallState.ENDED, "the reaper did not end the orphaned call"
        assert call.end_reason == "failed"
        assert time.monotonic() - killed_at < 60


def test_a_media_socket_on_another_process_still_echoes_sample_exact(
    tenant: Tenant, tmp_path: Path
) -> None:
    import asyncio

    from calls.tests.media_client import MediaClient, chirp, find

    headers = {"Authorization": f"Bearer {tenant.test_key}"}
    # The call's runtime in a Daphne process, its socket on a media process (uvicorn).
    with daphne(tmp_path, "a", **FAST) as a, uvicorn_media(tmp_path, "b", **FAST) as b:
        via_a = httpx.Client(base_url=a.url, headers=headers, timeout=20)
        session_id = _ready_session(via_a)
        call_id = via_a.post(
            f"/api/v1/sessions/{session_id}/calls",
            json={"to": "15550000001@s.whatsapp.net"},
        ).json()["data"]["callId"]
        _wait_state(via_a, f"/api/v1/sessions/{session_id}/calls/{call_id}", "active")
        url = f"ws://127.0.0.1:{b.port}/api/v1/sessions/{session_id}/calls/{call_id}/media"
        signal = chirp(1.0)

        async def scenario() -> None:
            async with MediaClient(url, tenant.test_key) as client:
                await client.wait_for(lambda: client.messages, timeout=10)
                assert client.messages[0][1]["type"] == "ready"
                await client.stream(signal)
                await client.send_json({"type": "mark", "name": "done"})
                await client.wait_for(
                    lambda: find(client.received(), signal) >= 0, timeout=10
                )
                marks = await client.wait_for(lambda: client.of_type("mark"), timeout=5)
                assert marks[0]["name"] == "done" and marks[0]["playedMs"] == 1000

        asyncio.run(scenario())
        assert "Traceback" not in a.output() + b.output(), a.output() + b.output()
