"""The event log's order is safe to resume from, with several writer processes.

Writers in other processes hold their transactions open for random lengths after writing
an event, so ids commit out of order (a smaller id becomes visible after a larger one).
A client reading the SSE stream reconnects every few hundred milliseconds with
``Last-Event-ID``, and a poller pages ``events_after``: each gets every event written,
once, in the log's order.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from conftest import LiveServer, Tenant
from events import selectors
from events.models import Event
from tests.processes import ROOT, service_env

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

WRITERS = 4
PER_WRITER = 60

WRITER = """
import random, sys, time
import django
django.setup()
from django.db import transaction
from accounts.models import Environment
from events import services

environment = Environment.objects.get(pk=int(sys.argv[1]))
name = sys.argv[2]
random.seed(name)
for n in range(int(sys.argv[3])):
    with transaction.atomic():
        services.event_emit(
            environment=environment,
            type="session.created",
            data={"writer": name, "n": n},
        )
        # Hold the transaction open: later ids from other writers commit first.
        time.sleep(random.random() * 0.04)
    time.sleep(random.random() * 0.01)
"""


def _read_sse(
    url: str, key: str, received: list[str], stop: threading.Event, last: list[str]
) -> None:
    """Read the stream, reconnecting every 300 ms from the last id seen."""
    while not stop.is_set():
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        if last:
            headers["Last-Event-ID"] = last[0]
        opened = time.monotonic()
        try:
            with (
                httpx.Client(timeout=5) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                assert response.status_code == 200, response.read()
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                        received.append(event_id)
                        last[:] = [event_id]
                    if time.monotonic() - opened > 0.3 or stop.is_set():
                        break
        except httpx.HTTPError:
            time.sleep(0.05)


def test_sse_resumes_and_polling_pages_see_every_event_once_in_log_order(
    tenant: Tenant, asgi_server: LiveServer, tmp_path: Path
) -> None:
    environment = tenant.test
    # Where the reader starts: after an event written before the writers.
    from events import services

    first = services.event_emit(
        environment=environment, type="session.created", data={"start": True}
    )
    received: list[str] = []
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_sse,
        args=(
            f"{asgi_server.url}/api/v1/events",
            tenant.test_key,
            received,
            stop,
            [str(first.public_id)],
        ),
        daemon=True,
    )
    reader.start()
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(environment.pk),
                f"w{i}",
                str(PER_WRITER),
            ],
            cwd=ROOT,
            env=service_env(),
        )
        for i in range(WRITERS)
    ]
    # Meanwhile a poller pages the log from the same start, and so does a naive one
    # that resumes after the largest id it has seen.
    polled: list[str] = []
    naive: list[int] = []
    cursor = selectors.event_cursor(environment, first.public_id)
    while any(writer.poll() is None for writer in writers):
        for event in selectors.events_after(environment.pk, cursor, limit=7):
            cursor = (event.txid, event.pk)
            polled.append(str(event.public_id))
        naive.extend(
            Event.objects.filter(
                environment=environment, pk__gt=max(naive, default=first.pk)
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        time.sleep(0.02)
    for writer in writers:
        assert writer.wait(60) == 0
    written = [
        str(public_id)
        for public_id in Event.objects.filter(environment=environment, pk__gt=first.pk)
        .order_by("txid", "pk")
        .values_list("public_id", flat=True)
    ]
    assert len(written) == WRITERS * PER_WRITER
    deadline = time.monotonic() + 20
    while len(received) < len(written) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    reader.join(10)
    while True:
        page = selectors.events_after(environment.pk, cursor, limit=7)
        if not page:
            break
        for event in page:
            cursor = (event.txid, event.pk)
            polled.append(str(event.public_id))
    # Ids committed out of order really happened: resuming by id lost events.
    assert len(set(naive)) < len(written)
    assert polled == written
    assert received == written
