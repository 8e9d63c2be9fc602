"""Fixtures for stream tests: the call engine, fast streams, placing calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from rest_framework.test import APIClient

from calls.models import Call, CallState
from calls.runtime import control
from calls.runtime.engine import Engine
from calls.tests.conftest import fast_network, wait_for
from config import home
from config.celery_app import app as celery_app
from streams import live

__all__ = ["fast_network"]

ECHO = "15550000001@s.whatsapp.net"


@pytest.fixture
def engine(transactional_db: Any) -> Iterator[Engine]:
    """This process's engine; at the end every live call is dropped and its streams
    stop and record it while the test database is still there."""
    local = control.engine()
    yield local

    async def drop_all() -> None:
        for runtime in list(local.runtimes.values()):
            runtime.drop()
        await live.settled()

    home.run_sync(drop_all())


@pytest.fixture
def fast_streams(settings: Any, fast_network: Any) -> Any:
    """Shrink the streams' timings: retries and counter writes in milliseconds."""
    settings.STREAM_CONNECT_TIMEOUT_S = 1.0
    settings.STREAM_RETRY_BACKOFF_S = 0.05
    settings.STREAM_STATS_INTERVAL_S = 0.2
    return settings


@pytest.fixture
def callbacks_in_process() -> Iterator[None]:
    """Run status-callback tasks in this process (no worker listens with REDIS_URL)."""
    conf = celery_app.conf
    before = conf.task_always_eager
    conf.task_always_eager = True
    yield
    conf.task_always_eager = before


def paired_session(client: APIClient) -> str:
    session_id = client.post(
        "/api/v1/sessions", {"displayName": "streams"}, format="json"
    ).json()["data"]["sessionId"]
    client.post(f"/api/v1/sessions/{session_id}/connect")
    client.post(f"/api/v1/test-helpers/sessions/{session_id}/scan")
    return session_id


def place(
    client: APIClient, to: str = ECHO, streams: list[dict[str, Any]] | None = None
) -> tuple[str, str, dict[str, Any]]:
    """Place a call (optionally with streams); wait until it is active."""
    session_id = paired_session(client)
    body: dict[str, Any] = {"to": to}
    if streams is not None:
        body["streams"] = streams
    response = client.post(f"/api/v1/sessions/{session_id}/calls", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    call_id = data["callId"]
    wait_for(lambda: Call.objects.get(public_id=call_id).state == CallState.ACTIVE)
    return session_id, call_id, data


def streams_url(session_id: str, call_id: str) -> str:
    return f"/api/v1/sessions/{session_id}/calls/{call_id}/streams"


async def in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run blocking work (the API client, the ORM) off the test's event loop."""

    def run() -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            # The executor's threads outlive the test: leave no connection open in
            # them, or PostgreSQL cannot drop the test database at the end.
            connections.close_all()

    return await asyncio.to_thread(run)
