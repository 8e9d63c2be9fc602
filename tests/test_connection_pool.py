"""A server process with a bounded PostgreSQL pool stays within it under concurrency."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from conftest import Tenant
from tests.processes import daphne

pytestmark = [
    pytest.mark.production_shape,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not str(settings.DATABASES["default"]["ENGINE"]).endswith("postgresql"),
        reason="PostgreSQL's pool (CI's second shape)",
    ),
]

POOL = 3


def _connections(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name]
        )
        return int(cursor.fetchone()[0])


def test_sixty_concurrent_requests_use_at_most_the_pool_and_all_succeed(
    tenant: Tenant, tmp_path: Path
) -> None:
    name = f"pooltest-{time.monotonic_ns()}"
    with daphne(
        tmp_path,
        "pooled",
        DATABASE_POOL_MAX_SIZE=str(POOL),
        DATABASE_APPLICATION_NAME=name,
        API_RATE_LIMIT_PER_MINUTE="100000",
    ) as server:
        seen: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.append(_connections(name))
                time.sleep(0.02)
            connection.close()

        watcher = threading.Thread(target=watch)
        watcher.start()
        headers = {"Authorization": f"Bearer {tenant.test_key}"}

        def get(_: int) -> int:
            response = httpx.get(
                f"{server.url}/api/v1/sessions", headers=headers, timeout=30
            )
            return response.status_code

        try:
            with ThreadPoolExecutor(max_workers=60) as pool:
                statuses = list(pool.map(get, range(60)))
        finally:
            stop.set()
            watcher.join(10)
    assert statuses == [200] * 60
    assert max(seen) >= 1  # the watcher saw the server's connections
    assert max(seen) <= POOL
