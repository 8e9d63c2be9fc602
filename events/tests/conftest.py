"""Fixtures for webhooks and SSE: a real HTTP receiver on loopback, fast retries, streams."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from rest_framework.test import APIClient

from calls.tests.conftest import engine, fast_network
from config import schedule
from config.celery_app import app as celery_app
from events.models import WebhookDelivery

# The call engine's fixtures, for streams that follow real calls.
__all__ = ["engine", "fast_network"]

API = "/api/v1"


# ---------------------------------------------------------------- a webhook receiver


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def envelope(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """An HTTP server in a thread: records every request, answers from a script (then 200)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[Reply] = []
        self._condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._condition:
                    reply = receiver.script.pop(0) if receiver.script else Reply()
                if reply.delay:
                    time.sleep(reply.delay)
                with receiver._condition:
                    receiver.requests.append(
                        Received(
                            time.monotonic(),
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    receiver._condition.notify_all()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def answer(self, *replies: Reply) -> None:
        with self._condition:
            self.script.extend(replies)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` requests arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self.requests)} of {count} webhook requests in {timeout} s"
                    )
                self._condition.wait(left)
            return list(self.requests)

    def of_type(self, type_: str) -> list[Received]:
        with self._condition:
            return [r for r in self.requests if r.envelope["type"] == type_]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def fast_retries(settings: Any) -> Any:
    """Retries in fractions of a second, attempts in this process (the embedded shape)."""
    # Load Celery's configuration first, so it keeps the run's real eagerness: only
    # events.delivery and config.schedule read the overridden setting, and only during
    # this test.
    assert celery_app.conf.task_always_eager in (True, False)
    settings.WEBHOOK_RETRY_BASE_S = 0.2
    settings.WEBHOOK_TIMEOUT_S = 2.0
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return settings


def create_webhook(
    client: APIClient, url: str, events: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    response = client.post(
        f"{API}/webhooks",
        {"url": url, "events": events or ["*"], **extra},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["data"]


def settled(
    webhook_id: str, count: int = 1, statuses: tuple[str, ...] = ("succeeded", "failed")
) -> Callable[[], list[WebhookDelivery]]:
    """A predicate: ``count`` deliveries of the endpoint reached one of ``statuses``."""

    def check() -> list[WebhookDelivery]:
        done = list(
            WebhookDelivery.objects.filter(
                endpoint__public_id=webhook_id, status__in=statuses
            ).order_by("id")
        )
        local = schedule.current()
        if len(done) >= count and (local is None or local.due_or_running() == 0):
            return done
        return []

    return check


# ---------------------------------------------------------------- an SSE client


@dataclass
class SseMessage:
    id: str | None
    event: str | None
    data: str

    @property
    def envelope(self) -> dict[str, Any]:
        return json.loads(self.data)


class SseClient:
    """Reads an SSE stream over real HTTP in a thread; ``close()`` hangs up."""

    def __init__(
        self, url: str, key: str, headers: dict[str, str] | None = None
    ) -> None:
        self.messages: list[SseMessage] = []
        self.comments: list[str] = []
        self.lines: list[str] = []
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self.opened = threading.Event()
        self._stop = threading.Event()
        self._condition = threading.Condition()
        self._headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "text/event-stream",
            **(headers or {}),
        }
        self._url = url
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10.0)) as client,
                client.stream("GET", self._url, headers=self._headers) as response,
            ):
                self.status = response.status_code
                self.response_headers = dict(response.headers)
                if response.status_code != 200:
                    response.read()
                    self.body = response.content
                    self.opened.set()
                    return
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    self.lines.append(line)
                    if line.startswith("retry:"):
                        self.opened.set()
                    if line == "":
                        if "data" in fields:
                            with self._condition:
                                self.messages.append(
                                    SseMessage(
                                        fields.get("id"),
                                        fields.get("event"),
                                        fields["data"],
                                    )
                                )
                                self._condition.notify_all()
                        fields = {}
                    elif line.startswith(":"):
                        with self._condition:
                            self.comments.append(line[1:].strip())
                            self._condition.notify_all()
                    else:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                    if self._stop.is_set():
                        return
        except BaseException as exc:  # surfaced by wait_for
            self.error = exc
            self.opened.set()

    def wait_open(self, timeout: float = 10.0) -> SseClient:
        assert self.opened.wait(timeout), "the stream did not open"
        assert self.error is None, self.error
        return self

    def wait_for(
        self, predicate: Callable[[list[SseMessage]], bool], timeout: float = 10.0
    ) -> list[SseMessage]:
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if self.error is not None:
                    raise AssertionError(f"stream failed: {self.error!r}")
                if left <= 0:
                    raise AssertionError(
                        f"stream condition not met in {timeout} s; got "
                        f"{[m.event for m in self.messages]}"
                    )
                self._condition.wait(min(left, 0.2))
            return list(self.messages)

    def wait_comments(self, count: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.comments) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self.comments)} comments in {timeout} s"
                    )
                self._condition.wait(left)
            return list(self.comments)

    def close(self) -> None:
        """Hang up at the next line (heartbeats keep lines coming)."""
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the stream reader did not stop"


@pytest.fixture
def sse(settings: Any) -> Iterator[Callable[..., SseClient]]:
    """Open SSE streams with a heartbeat shrunk to 0.2 s; all are closed at the end."""
    settings.SSE_HEARTBEAT_S = 0.2
    opened: list[SseClient] = []

    def open_stream(
        url: str, key: str, headers: dict[str, str] | None = None
    ) -> SseClient:
        client = SseClient(url, key, headers)
        opened.append(client)
        return client

    yield open_stream
    for client in opened:
        client._stop.set()
    for client in opened:
        client._thread.join(10)
