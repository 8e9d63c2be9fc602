"""Fixtures for tests that need the call engine (on the home loop, in this process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from calls.runtime import control
from calls.runtime.engine import Engine
from config import home


@pytest.fixture
def fast_network(settings: Any) -> Any:
    """Shrink the simulated network's timings so calls progress in milliseconds."""
    settings.SIM_DIAL_MS = 20
    settings.SIM_RING_MS = 60
    settings.SIM_HANGUP_AFTER_MS = 300
    settings.CALL_RING_TIMEOUT_S = 0.6
    return settings


@pytest.fixture
def engine(transactional_db: Any) -> Iterator[Engine]:
    """This process's engine; every call still live at the end of the test is dropped."""
    local = control.engine()
    yield local

    async def drop_all() -> None:
        for runtime in list(local.runtimes.values()):
            runtime.drop()

    home.run_sync(drop_all())
    _settle()


def _settle(timeout: float = 5.0) -> None:
    """Wait until no other connection is working on the test database.

    Dropped calls still finish in the background (recordings, playback events); on
    PostgreSQL the flush after a transactional test deadlocks with such writes.
    """
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    quiet_polls = 0
    deadline = time.monotonic() + timeout
    while quiet_polls < 3 and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
            busy = cursor.fetchone()[0]
        quiet_polls = quiet_polls + 1 if busy == 0 else 0
        time.sleep(0.05)


def wait_for(
    predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02
) -> Any:
    """Poll until ``predicate()`` is truthy; return its value or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
