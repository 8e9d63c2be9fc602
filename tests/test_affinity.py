"""Affinity by design: each media process has its own address, a call's snapshot names the
one hosting it (``mediaUrl``), and a socket that lands elsewhere is told where to go."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from django.conf import settings

from calls.tests.media_client import MediaClient, chirp, find
from conftest import Tenant
from tests.processes import Server, uvicorn_media_at_own_url

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
    "ENGINE_STALE_AFTER_S": "10",
    # Each process tells clients its own loopback address.
    "SWITCHBOARD_PROCESS_URL": "ws://127.0.0.1:{port}",
}
ECHO = "15550000001@s.whatsapp.net"
T = TypeVar("T")


def bridged_sockets(server: Server) -> float:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    [line] = [
        line
        for line in text.splitlines()
        if line.startswith("switchboard_media_bridged_sockets ")
    ]
    return float(line.split()[1])


def wait_until(predicate: Callable[[], T], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)


def active_call_via(client: httpx.Client) -> dict:
    session_id = client.post("/api/v1/sessions", json={"displayName": "aff"}).json()[
        "data"
    ]["sessionId"]
    client.post(f"/api/v1/sessions/{session_id}/connect").raise_for_status()
    client.post(f"/api/v1/test-helpers/sessions/{session_id}/scan").raise_for_status()
    created = client.post(f"/api/v1/sessions/{session_id}/calls", json={"to": ECHO})
    assert created.status_code == 201, created.text
    path = f"/api/v1/sessions/{session_id}/calls/{created.json()['data']['callId']}"
    wait_until(lambda: client.get(path).json()["data"]["state"] == "active")
    return client.get(path).json()["data"]


async def echoes_exactly(client: MediaClient, seconds: float = 1.0) -> None:
    signal = chirp(seconds)
    await client.stream(signal)
    await client.wait_for(lambda: find(client.received(), signal) >= 0, timeout=15)


def test_a_call_reports_its_hosts_address_and_a_socket_there_needs_no_bridge(
    tenant: Tenant, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {tenant.test_key}"}
    with (
        uvicorn_media_at_own_url(tmp_path, "a", **FAST) as a,
        uvicorn_media_at_own_url(tmp_path, "b", **FAST) as b,
    ):
        via_a = httpx.Client(base_url=a.url, headers=headers, timeout=20)
        via_b = httpx.Client(base_url=b.url, headers=headers, timeout=20)
        call = active_call_via(via_b)
        path = f"/api/v1/sessions/{call['sessionId']}/calls/{call['callId']}"
        at_b = f"ws://127.0.0.1:{b.port}{path}/media"
        assert call["mediaUrl"] == at_b
        # Any process answers the same: the host's address, not its own.
        assert via_a.get(path).json()["data"]["mediaUrl"] == at_b
        assert any(
            c["callId"] == call["callId"] and c["mediaUrl"] == at_b
            for c in (via_a.get("/api/v1/calls").json()["data"])
        )

        async def direct() -> None:
            async with MediaClient(call["mediaUrl"], tenant.test_key) as client:
                ready = await client.wait_for(lambda: client.of_type("ready"))
                assert client.messages[0][1]["type"] == "ready"
                assert "reconnect" not in ready[0]
                assert ready[0]["call"]["mediaUrl"] == at_b
                await echoes_exactly(client)
                assert bridged_sockets(a) == 0 and bridged_sockets(b) == 0

        asyncio.run(direct())
        assert "is bridged" not in a.output() + b.output()


def test_a_socket_at_another_process_is_told_the_hosts_address_and_still_echoes(
    tenant: Tenant, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {tenant.test_key}"}
    with (
        uvicorn_media_at_own_url(tmp_path, "a", **FAST) as a,
        uvicorn_media_at_own_url(tmp_path, "b", **FAST) as b,
    ):
        via_b = httpx.Client(base_url=b.url, headers=headers, timeout=20)
        call = active_call_via(via_b)
        path = f"/api/v1/sessions/{call['sessionId']}/calls/{call['callId']}/media"
        at_a = f"ws://127.0.0.1:{a.port}{path}"

        async def bridged() -> None:
            # An old client stays where it landed: the bridge carries the call.
            for _ in range(2):
                async with MediaClient(at_a, tenant.test_key) as client:
                    ready = await client.wait_for(lambda: client.of_type("ready"))
                    assert client.messages[0][1]["type"] == "ready"
                    assert ready[0]["reconnect"] == {
                        "mediaUrl": call["mediaUrl"],
                        "reason": "bridged",
                    }
                    assert bridged_sockets(a) == 1
                    await echoes_exactly(client, 0.5)
                await asyncio.to_thread(wait_until, lambda: bridged_sockets(a) == 0)

        asyncio.run(bridged())
        told = [line for line in a.output().splitlines() if "is bridged" in line]
        assert len(told) == 1, told  # once per call, however many sockets
        assert " INFO " in told[0] and call["mediaUrl"] in told[0]

        # The SDK follows the word at once: its socket ends up at the host.
        from switchboard_sdk import AudioFrame, MediaSocket
        from switchboard_sdk.audio import to_f32le

        signal = to_f32le(chirp(0.5))

        async def sdk() -> None:
            async with MediaSocket(at_a, tenant.test_key) as media:
                assert media.url == call["mediaUrl"]
                assert media.ready is not None and media.ready.reconnect_url is None
                await asyncio.to_thread(wait_until, lambda: bridged_sockets(a) == 0)
                await media.send_audio(signal)
                heard = bytearray()
                async with asyncio.timeout(15):
                    async for event in media:
                        if isinstance(event, AudioFrame):
                            heard += event.data
                            at = bytes(heard).find(signal)
                            if at >= 0 and at % 4 == 0:
                                break
                assert bridged_sockets(a) == 0

        asyncio.run(sdk())
        assert "Traceback" not in a.output() + b.output(), a.output() + b.output()
