"""Shared fixtures: accounts with keys in both environments, an outsider, API clients."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts import selectors, services
from accounts.models import Account, Environment


def pytest_configure(config: pytest.Config) -> None:
    """Fail loudly when a configured service is unreachable: never a silent skip."""
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
        except Exception as exc:
            raise pytest.UsageError(
                f"REDIS_URL={redis_url} is set but unreachable: {exc}"
            ) from exc


@pytest.fixture(scope="session", autouse=True)
def _engine_stops_before_the_database_goes(django_db_setup: Any) -> Iterator[None]:
    """Stop this process's call engine, if a test started one, before the test database
    is dropped (session fixtures tear down in reverse order)."""
    yield
    from calls.runtime.engine import current_engine
    from config import home

    engine = current_engine()
    if engine is not None:
        home.run_sync(engine.stop())
    # Spools of calls this run left unfinished (their rows went with the test database).
    shutil.rmtree(settings.RECORDING_SPOOL_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def _own_scheduler() -> Iterator[None]:
    """Each test starts with no in-process scheduler and ends by stopping the one it
    started, so no webhook retry or periodic job of one test runs during another."""
    from config import schedule

    schedule.stop()
    yield
    schedule.stop()


@dataclass
class Tenant:
    account: Account
    test: Environment
    live: Environment
    test_key: str
    live_key: str

    def client(self, kind: str = "test") -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {getattr(self, f'{kind}_key')}")
        return client


def make_tenant(name: str) -> Tenant:
    account = services.account_create(name=name)
    test = selectors.environment_of(account, "test")
    live = selectors.environment_of(account, "live")
    return Tenant(
        account=account,
        test=test,
        live=live,
        test_key=services.api_key_issue(environment=test, name="tests").secret,
        live_key=services.api_key_issue(environment=live, name="tests").secret,
    )


@pytest.fixture
def tenant(db: Any) -> Tenant:
    return make_tenant("Acme")


@pytest.fixture
def outsider(db: Any) -> Tenant:
    return make_tenant("Outsider Ltd")


@pytest.fixture
def api(tenant: Tenant) -> APIClient:
    """An API client holding the tenant's test key."""
    return tenant.client("test")


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _media_root(tmp_path: Any, settings: Any) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path / "media"
    yield


def is_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert a response is problem details with this status (and code); return its body."""
    assert response.status_code == status, (
        response.status_code,
        response.content[:500],
    )
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"] and body["detail"]
    assert body["requestId"] == response["X-Request-Id"]
    if code is not None:
        assert body["code"] == code, body
    return body


__all__ = ["Tenant", "is_problem", "make_tenant", "settings"]


@dataclass
class LiveServer:
    url: str
    ws_url: str


@pytest.fixture(scope="session")
def asgi_server() -> Iterator[LiveServer]:
    """The real ASGI application on a loopback port, served on this process's home loop.

    Sharing the home loop with the call engine makes it the same arrangement as a server
    process in production: sockets and runtimes in one loop, frames handed over directly.
    """
    import socket as socket_module

    import uvicorn

    from config import home
    from config.asgi import application

    with socket_module.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        ws="config.media_server:MediaWebSocketProtocol",
        ws_per_message_deflate=False,
        ws_max_size=128 * 1024,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    home.submit(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test ASGI server did not start")
        time.sleep(0.02)
    yield LiveServer(url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}")
    server.should_exit = True
