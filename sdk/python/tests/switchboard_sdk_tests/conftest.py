"""Fixtures: the real server, the call engine, and SDK clients holding a tenant's keys.

Every test here talks to ``asgi_server`` over real HTTP and WebSockets; the server
runs in another thread, so the data a test makes must be committed:
``engine`` brings ``transactional_db``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from switchboard_sdk import AsyncSwitchboard, Switchboard

from calls.runtime.engine import Engine
from calls.tests.conftest import engine as calls_engine
from calls.tests.conftest import fast_network
from config import home
from conftest import LiveServer, Tenant

__all__ = ["calls_engine", "fast_network"]

ECHO = "15550000001@s.whatsapp.net"


@pytest.fixture
def engine(calls_engine: Engine) -> Iterator[Engine]:
    """The process's engine; calls still live at the end are dropped and their
    recordings finished before the database is emptied for the next test."""
    from recordings.recorder import wait_for_recorders

    yield calls_engine

    async def drop_all() -> None:
        for runtime in list(calls_engine.runtimes.values()):
            runtime.drop()

    home.run_sync(drop_all())
    wait_for_recorders()


@pytest.fixture(autouse=True)
def _server_side(settings: Any, tmp_path: Path) -> Iterator[None]:
    """Tasks (recordings, webhooks, asset decoding) run in the server's process, as
    embedded, in both CI shapes; recordings spool under the test's own folder."""
    from config.celery_app import app

    settings.RECORDING_SPOOL_DIR = tmp_path / "spool"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def live(
    engine: Engine,
    fast_network: Any,
    asgi_server: LiveServer,
    tenant: Tenant,
    settings: Any,
) -> LiveServer:
    """The server, with the engine up and the simulated network fast; its public URL
    (the base of the snapshots' ``mediaUrl``) is its own, as a deployment sets it."""
    settings.SWITCHBOARD_PUBLIC_URL = asgi_server.url
    return asgi_server


@pytest.fixture
def sb(live: LiveServer, tenant: Tenant) -> Iterator[Switchboard]:
    """The sync client with the tenant's test key."""
    with Switchboard(live.url, tenant.test_key) as client:
        yield client


@pytest.fixture
def async_sb(live: LiveServer, tenant: Tenant) -> AsyncSwitchboard:
    """The async client with the tenant's test key (closed by the test's own loop)."""
    return AsyncSwitchboard(live.url, tenant.test_key)


def ready_session(sb: Switchboard, name: str = "Line") -> str:
    """A paired, connected test line."""
    session = sb.sessions.create(name)
    sb.sessions.connect(session["sessionId"])
    sb.test_helpers.scan(session["sessionId"])
    return session["sessionId"]


def active_call(sb: Switchboard, to: str = ECHO, **options: Any) -> tuple[str, str]:
    """A ready line and an answered call to ``to`` (the echo peer by default)."""
    session_id = ready_session(sb)
    call = sb.calls.place(session_id, to, **options)
    answered = sb.calls.wait(session_id, call["callId"], timeout=10)
    assert answered["state"] == "active", answered
    return session_id, call["callId"]
