"""Holds under load and faults: real processes, real sockets, and things that break.

Redis dies mid-call and comes back; PostgreSQL connections are capped under a burst of
requests; a Celery worker is killed mid-decode and mid-delivery. Each test waits for
outcomes with deadlines (never a tight clock) and asserts what a user would see.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from fractions import Fraction
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from calls.tests.media_client import MediaClient, chirp, find
from conftest import Tenant
from events.tests.conftest import Received, Receiver, SseClient
from tests.processes import beat, daphne, redis_server, uvicorn_media, worker_group

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

T = TypeVar("T")

API = "/api/v1"
ECHO_PEER = "15550000001@s.whatsapp.net"

# Fast simulated network and heartbeats, and sweeps that come round every second or so.
FAST = {
    "SIM_DIAL_MS": "20",
    "SIM_RING_MS": "50",
    "ENGINE_HEARTBEAT_S": "1",
    "WEBHOOK_SWEEP_INTERVAL_S": "1",
    "WEBHOOK_SWEEP_GRACE_S": "1",
    "WEBHOOK_RETRY_BASE_S": "0.5",
    "SSE_HEARTBEAT_S": "0.5",
}


def wait_until(
    predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def ready_session(client: httpx.Client, name: str = "chaos") -> str:
    created = client.post(f"{API}/sessions", json={"displayName": name})
    assert created.status_code == 201, created.text
    session_id: str = created.json()["data"]["sessionId"]
    client.post(f"{API}/sessions/{session_id}/connect").raise_for_status()
    client.post(f"{API}/test-helpers/sessions/{session_id}/scan").raise_for_status()
    return session_id


def active_call(client: httpx.Client, session_id: str) -> str:
    """Call the echo peer and wait until it answers; return the call's path."""
    created = client.post(f"{API}/sessions/{session_id}/calls", json={"to": ECHO_PEER})
    assert created.status_code == 201, created.text
    path = f"{API}/sessions/{session_id}/calls/{created.json()['data']['callId']}"
    wait_until(
        lambda: client.get(path).json()["data"]["state"] == "active",
        20,
        "the echo peer answers",
    )
    return path


def events_after(client: httpx.Client, after: str) -> list[dict[str, Any]]:
    """Every event of the log after ``after``, oldest first, through the polling API."""
    events: list[dict[str, Any]] = []
    cursor: str | None = after
    while cursor is not None:
        page = client.get(f"{API}/events", params={"after": cursor, "limit": 100})
        assert page.status_code == 200, page.text
        events += page.json()["data"]
        cursor = page.json()["nextCursor"]
    return events


def healthy(client: httpx.Client) -> bool:
    return client.get("/healthz").status_code == 200


class MediaThread:
    """A media socket on an event loop of its own thread, driven from the test's."""

    def __init__(self, url: str, key: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = MediaClient(url, key)
        self.run(self.client.__aenter__())

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return self.submit(coro).result(timeout)

    def stream(self, signal: np.ndarray) -> concurrent.futures.Future[float]:
        """Send ``signal`` in the background at real time, a second ahead: the playout
        buffer absorbs this process stalling (on a busy machine) for up to a second."""
        return self.submit(self.client.stream(signal, prebuffer_frames=50))

    def echoed(self, signal: np.ndarray) -> bool:
        """True once the peer's audio holds ``signal`` whole, sample for sample."""
        frames = list(self.client.audio)
        if not frames:
            return False
        return find(np.concatenate([frame for _, frame in frames]), signal) >= 0

    def close(self) -> None:
        try:
            self.run(self.client.__aexit__(None, None, None), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


# ---------------------------------------------------------------- Redis dies mid-call


def test_a_call_and_the_api_ride_out_redis_dying_and_everything_resumes_after(
    tenant: Tenant, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {tenant.test_key}"}
    receiver = Receiver()
    with ExitStack() as stack:
        stack.callback(receiver.close)
        redis = stack.enter_context(redis_server(tmp_path))
        env = {**FAST, "REDIS_URL": redis.url}
        # Worker and beat boot while the servers do. The call and its socket on a media
        # process; more of the API on a Daphne.
        stack.enter_context(worker_group(tmp_path, "worker", env))
        stack.enter_context(beat(tmp_path, **env))
        media_server = stack.enter_context(uvicorn_media(tmp_path, "media", **env))
        api_server = stack.enter_context(daphne(tmp_path, "api", **env))
        client = stack.enter_context(
            httpx.Client(base_url=media_server.url, headers=headers, timeout=20)
        )
        other = stack.enter_context(
            httpx.Client(base_url=api_server.url, headers=headers, timeout=20)
        )

        hook = client.post(
            f"{API}/webhooks", json={"url": receiver.url, "events": ["*"]}
        )
        assert hook.status_code == 201, hook.text
        hook_id, secret = hook.json()["data"]["id"], hook.json()["data"]["secret"]
        session_id = ready_session(client)
        # The log's first event: everything from here on is read after it.
        first = client.get(f"{API}/events", params={"limit": 100}).json()["data"][0]
        call = active_call(client, session_id)
        call_id = call.rsplit("/", 1)[1]

        stream = SseClient(f"{api_server.url}{API}/events", tenant.test_key)
        stream.wait_open()
        media = MediaThread(
            f"ws://127.0.0.1:{media_server.port}{call}/media", tenant.test_key
        )
        stack.callback(media.close)
        wait_until(lambda: media.client.messages, 10, "the socket's first frame")
        assert media.client.messages[0][1]["type"] == "ready"
        before = chirp(1.0, amplitude=0.6)
        media.stream(before).result(10)
        wait_until(lambda: media.echoed(before), 10, "the echo before the outage")
        # An event the open stream sees live (published across processes), to
        # resume after.
        marker = client.post(f"{API}/sessions", json={"displayName": "marker"})
        assert marker.status_code == 201, marker.text
        marker_id = marker.json()["data"]["sessionId"]
        seen = stream.wait_for(
            lambda messages: any(m.envelope["sessionId"] == marker_id for m in messages)
        )
        last_seen = seen[-1].id
        assert last_seen is not None

        redis.kill()
        # Five distinct seconds of audio across the outage, while the API is busy.
        during = [chirp(1.0, amplitude=0.30 + 0.05 * i) for i in range(5)]
        streaming = media.stream(np.concatenate(during))
        answered: list[tuple[str, int, float]] = []
        health: list[httpx.Response] = []
        created_during: list[str] = []

        def call_api(
            via: httpx.Client, method: str, path: str, body: Any = None
        ) -> httpx.Response:
            started = time.monotonic()
            response = via.request(method, path, json=body)
            took = time.monotonic() - started
            answered.append(
                (f"{method} {via.base_url}{path}", response.status_code, took)
            )
            return response

        outage_ends = time.monotonic() + 6
        while time.monotonic() < outage_ends:
            for via in (client, other):
                call_api(via, "GET", f"{API}/calls")
                call_api(via, "GET", call)
                call_api(via, "GET", f"{API}/sessions")
                created = call_api(via, "POST", f"{API}/sessions", {"displayName": "d"})
                if created.status_code == 201:
                    sid = created.json()["data"]["sessionId"]
                    created_during.append(sid)
                    call_api(via, "POST", f"{API}/sessions/{sid}/connect")
                    call_api(via, "POST", f"{API}/test-helpers/sessions/{sid}/scan")
                health.append(via.get("/healthz"))
            time.sleep(0.1)
        streaming.result(15)
        for index, signal in enumerate(during):
            wait_until(
                partial(media.echoed, signal),
                10,
                f"second {index} of the audio sent while Redis was down, echoed",
            )
        assert client.get(call).json()["data"]["state"] == "active"
        # The socket never noticed: still open, no error frame.
        assert media.client.close_code is None
        assert media.client.of_type("error") == []

        failures = [(what, status) for what, status, _ in answered if status >= 400]
        assert not failures, failures
        # The API kept answering promptly: nothing waited out the broker's absence.
        slow = [(what, round(took, 2)) for what, _, took in answered if took > 5]
        assert not slow, slow
        assert len(created_during) >= 2, answered
        assert len(health) >= 2
        for response in health:
            assert response.status_code == 503, response.text
            assert response.json()["failed"] == ["channelLayer"]

        redis.start()
        for via in (client, other):
            wait_until(partial(healthy, via), 30, f"{via.base_url}healthz back to 200")
        after = chirp(1.0, amplitude=0.9)
        media.stream(after).result(10)
        wait_until(lambda: media.echoed(after), 10, "the echo after the outage")
        late = other.post(f"{API}/sessions", json={"displayName": "after"})
        assert late.status_code == 201, late.text

        # Ended from the other process: the command crosses Redis again.
        ended = other.post(f"{call}/end")
        assert ended.status_code == 200, ended.text
        assert ended.json()["data"]["state"] == "ended"

        def recordings() -> list[dict[str, Any]] | None:
            page = client.get(f"{API}/recordings", params={"callId": call_id})
            assert page.status_code == 200, page.text
            found: list[dict[str, Any]] = page.json()["data"]
            return found if len(found) == 3 else None

        made = wait_until(recordings, 60, "the call's three recordings")
        assert sorted(r["kind"] for r in made) == ["inbound", "mixed", "outbound"]
        # Sample-aligned with each other, and at least the seven seconds of audio that
        # went into the call.
        assert len({r["durationMs"] for r in made}) == 1, made
        assert made[0]["durationMs"] >= 7000, made

        # The log holds everything, in one order that the resumed stream repeats.
        def whole_log() -> list[dict[str, Any]] | None:
            log = [first, *events_after(client, first["id"])]
            ready = [e for e in log if e["type"] == "call.recording.ready"]
            return log if len(ready) == 3 else None

        log = wait_until(whole_log, 30, "the recordings' events in the log")
        by_session: dict[str | None, set[str]] = {}
        for event in log:
            by_session.setdefault(event["sessionId"], set()).add(event["type"])
        for sid in created_during:
            assert {"session.created", "auth.paired"} <= by_session[sid], sid
        assert "session.created" in by_session[late.json()["data"]["sessionId"]]
        assert {"call.ended", "call.recording.ready"} <= by_session[session_id]

        ids = [event["id"] for event in log]
        resumed = SseClient(
            f"{api_server.url}{API}/events",
            tenant.test_key,
            headers={"Last-Event-ID": last_seen},
        )
        resumed.wait_open()
        tail = ids[ids.index(last_seen) + 1 :]
        got = resumed.wait_for(lambda messages: len(messages) >= len(tail), 30)
        assert [message.id for message in got] == tail
        resumed.close()
        stream.close()

        # Every event reached the webhook once it could: signed, whole, each once.
        def delivered() -> list[Received] | None:
            received = list(receiver.requests)
            return received if len(received) >= len(ids) else None

        received = wait_until(delivered, 60, "every event delivered to the webhook")
        verifier = Webhook(secret)
        envelopes = {event["id"]: event for event in log}
        for request in received:
            assert (
                verifier.verify(request.body, request.headers)
                == envelopes[request.headers["webhook-id"]]
            )
        assert sorted(r.headers["webhook-id"] for r in received) == sorted(ids)

        def deliveries(status: str) -> list[dict[str, Any]]:
            page = client.get(
                f"{API}/webhooks/{hook_id}/deliveries", params={"status": status}
            )
            assert page.status_code == 200, page.text
            found: list[dict[str, Any]] = page.json()["data"]
            return found

        # The last answers may still be being recorded.
        wait_until(lambda: not deliveries("pending"), 10, "no delivery left pending")
        assert deliveries("failed") == []


# ---------------------------------------------------------------- a capped database


# Twenty PostgreSQL connections for two server processes, ten each; the burst runs six
# times as many requests at once.
POOL = 10
CONCURRENT = 64
REQUESTS = 320


def test_a_burst_of_requests_on_two_servers_stays_within_the_connection_budget(
    tenant: Tenant, tmp_path: Path
) -> None:
    from django.db import connection

    from calls.models import Session

    names = {
        name: f"chaos-{name}-{time.monotonic_ns()}" for name in ("daphne", "uvicorn")
    }

    def connections() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity"
                " WHERE application_name = ANY(%s) GROUP BY application_name",
                [list(names.values())],
            )
            return dict(cursor.fetchall())

    env = {**FAST, "DATABASE_POOL_MAX_SIZE": str(POOL)}
    headers = {"Authorization": f"Bearer {tenant.test_key}"}
    with (
        daphne(
            tmp_path, "daphne", DATABASE_APPLICATION_NAME=names["daphne"], **env
        ) as first,
        uvicorn_media(
            tmp_path, "uvicorn", DATABASE_APPLICATION_NAME=names["uvicorn"], **env
        ) as second,
        httpx.Client(
            headers=headers, timeout=60, limits=httpx.Limits(max_connections=CONCURRENT)
        ) as client,
    ):
        samples: list[dict[str, int]] = []
        stop = threading.Event()

        def watch() -> None:
            try:
                while not stop.is_set():
                    samples.append(connections())
                    time.sleep(0.02)
            finally:
                connection.close()

        watcher = threading.Thread(target=watch)
        watcher.start()
        requests = [
            ("POST", "/api/v1/sessions"),
            ("GET", "/api/v1/sessions?limit=100"),
            ("POST", "/api/v1/sessions"),
            ("GET", "/api/v1/calls"),
            ("GET", "/api/v1/events?limit=100"),
        ]

        def send(index: int) -> tuple[str, int, str]:
            server = (first, second)[index % 2]
            method, path = requests[index % len(requests)]
            body = {"displayName": f"burst {index}"} if method == "POST" else None
            response = client.request(method, server.url + path, json=body)
            return f"{method} {path}", response.status_code, response.text[:300]

        try:
            with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
                answers = list(pool.map(send, range(REQUESTS)))
        finally:
            stop.set()
            watcher.join(10)
        logs = first.output() + second.output()

    failed = [answer for answer in answers if answer[1] not in (200, 201)]
    assert not failed, failed[:5]
    creates = sum(1 for what, _, _ in answers if what.startswith("POST"))
    assert Session.objects.filter(environment=tenant.test).count() == creates
    assert samples, "the watcher took no sample"
    per_process = {
        name: max(s.get(app, 0) for s in samples) for name, app in names.items()
    }
    total = max(sum(sample.values()) for sample in samples)
    # Both processes were seen holding connections, and never more than their pools.
    assert all(1 <= count <= POOL for count in per_process.values()), per_process
    assert total <= 2 * POOL, total
    assert "Traceback" not in logs, logs[-3000:]


# ---------------------------------------------------------------- a worker killed mid-task

OPUS_SPEECH = (
    Path(__file__).resolve().parents[1] / "fixtures/audio/speech_48k_mono.opus"
)


def long_opus(path: Path, copies: int) -> int:
    """Write the speech fixture's Opus packets ``copies`` times over as one Ogg Opus
    file (remuxed, not re-encoded); return its duration in ms from its timestamps."""
    import av

    with av.open(str(OPUS_SPEECH)) as source:
        stream = source.streams.audio[0]
        assert stream.time_base == Fraction(1, 48000)
        packets = [packet for packet in source.demux(stream) if packet.size]
        # Every packet's length in samples, but the last one's: it is trimmed.
        lengths = [packet.duration or 0 for packet in packets]
        full, trimmed = lengths[0], lengths[-1]
        start = packets[0].pts or 0  # negative: the Opus pre-skip
        with av.open(str(path), "w", format="ogg") as target:
            out = target.add_stream_from_template(stream)
            pts = start
            for copy in range(copies):
                for index, packet in enumerate(packets):
                    last = copy == copies - 1 and index == len(packets) - 1
                    tiled = av.Packet(bytes(packet))
                    tiled.stream = out
                    tiled.time_base = stream.time_base
                    tiled.pts = tiled.dts = pts
                    # Only the very last packet keeps the original's end trimming.
                    tiled.duration = trimmed if last else full
                    pts += tiled.duration
                    target.mux(tiled)
    return round(pts * 1000 / 48000)


class HoldingReceiver:
    """A webhook receiver that records each request as it arrives, holds the first one
    open (no answer) until released, and answers the others 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.release = threading.Event()
        self._condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._condition:
                    first = not receiver.requests
                    receiver.requests.append(
                        Received(
                            time.monotonic(),
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    receiver._condition.notify_all()
                if first:
                    receiver.release.wait(120)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender is gone

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        ).start()

    def wait_for(self, count: int, timeout: float) -> list[Received]:
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

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


# Sweeps come round every 10 s (assets) and every second (webhooks): an asset still
# processing 15 s after its upload is decoded again (and failed at 45 s, well after a
# busy machine's decoding); an attempt unfinished 1 + 3 × 3 s after it began is closed
# as interrupted and retried half a second later.
SWEEPS = {
    "ASSET_STUCK_AFTER_S": "15",
    "ASSET_SWEEP_INTERVAL_S": "10",
    "WEBHOOK_TIMEOUT_S": "3",
    "WEBHOOK_SWEEP_INTERVAL_S": "1",
    "WEBHOOK_SWEEP_GRACE_S": "1",
    "WEBHOOK_RETRY_BASE_S": "0.5",
}


def test_a_worker_killed_mid_decode_and_mid_delivery_loses_neither(
    tenant: Tenant, tmp_path: Path
) -> None:
    import redis as redis_client

    headers = {"Authorization": f"Bearer {tenant.test_key}"}
    upload = tmp_path / "long.opus"
    # A quarter of an hour of speech: seconds of decoding, time enough to die mid-way.
    duration_ms = long_opus(upload, copies=90)
    receiver = HoldingReceiver()
    with ExitStack() as stack:
        stack.callback(receiver.close)
        redis = stack.enter_context(redis_server(tmp_path))
        env = {**FAST, **SWEEPS, "REDIS_URL": redis.url}
        stack.enter_context(beat(tmp_path, **env))
        # Two pool processes, so that the decode and the delivery run at once.
        first = stack.enter_context(
            worker_group(tmp_path, "first", env, pool="prefork", concurrency=2)
        )
        server = stack.enter_context(daphne(tmp_path, "api", **env))
        client = stack.enter_context(
            httpx.Client(base_url=server.url, headers=headers, timeout=30)
        )
        hook = client.post(
            f"{API}/webhooks",
            json={"url": receiver.url, "events": ["session.created"]},
        )
        assert hook.status_code == 201, hook.text
        hook_id, secret = hook.json()["data"]["id"], hook.json()["data"]["secret"]

        wait_until(lambda: " ready." in first.output(), 60, "the first worker starts")
        with upload.open("rb") as audio:
            created = client.post(
                f"{API}/call-audio-assets", files={"audio": ("long.opus", audio)}
            )
        assert created.status_code == 201, created.text
        asset_id = created.json()["data"]["id"]
        asset = f"{API}/call-audio-assets/{asset_id}"
        wait_until(
            lambda: "Task assets.decode[" in first.output(),
            30,
            "the first worker takes the decoding",
        )
        time.sleep(1)  # well into a decoding that takes seconds
        session = client.post(f"{API}/sessions", json={"displayName": "hooked"})
        assert session.status_code == 201, session.text
        [held] = receiver.wait_for(1, timeout=30)
        first.kill()

        # Both died in the middle: the asset is still processing, the attempt unfinished,
        # and the broker holds both messages unacknowledged (acks late).
        assert "assets.decode" not in "\n".join(
            line for line in first.output().splitlines() if "succeeded" in line
        )
        assert client.get(asset).json()["data"]["status"] == "processing"
        [delivery] = client.get(f"{API}/webhooks/{hook_id}/deliveries").json()["data"]
        assert delivery["status"] == "pending"
        assert [a["finishedAt"] for a in delivery["attempts"]] == [None]
        broker = redis_client.Redis.from_url(redis.url)
        unacked = [json.loads(raw)[0] for raw in broker.hvals("unacked")]
        broker.close()
        assert sorted(message["headers"]["task"] for message in unacked) == [
            "assets.decode",
            "events.deliver_webhook",
        ]

        stack.enter_context(worker_group(tmp_path, "second", env))

        def ready() -> dict[str, Any] | None:
            data: dict[str, Any] = client.get(asset).json()["data"]
            assert data["status"] in ("processing", "ready"), data
            return data if data["status"] == "ready" else None

        decoded = wait_until(ready, 60, "the asset decoded by the second worker")
        assert decoded["durationMs"] == duration_ms
        assert decoded["sampleRate"] == 48000 and decoded["channels"] == 1

        def succeeded() -> dict[str, Any] | None:
            page = client.get(f"{API}/webhooks/{hook_id}/deliveries").json()["data"]
            return page[0] if page[0]["status"] == "succeeded" else None

        done = wait_until(succeeded, 60, "the delivery succeeded")
        interrupted, delivered = done["attempts"]
        assert interrupted["attempt"] == 1 and interrupted["succeeded"] is False
        assert "interrupted" in interrupted["error"]
        assert delivered["attempt"] == 2 and delivered["succeeded"] is True
        assert delivered["statusCode"] == 200

        requests = receiver.wait_for(2, timeout=5)
        assert len(requests) == 2
        verifier = Webhook(secret)
        for request in requests:
            event = verifier.verify(request.body, request.headers)
            assert event["type"] == "session.created"
            assert event["sessionId"] == session.json()["data"]["sessionId"]
        # The same event, byte for byte, under the same webhook-id.
        assert held.headers["webhook-id"] == requests[1].headers["webhook-id"]
        assert held.body == requests[1].body
