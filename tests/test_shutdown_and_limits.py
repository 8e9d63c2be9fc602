"""Oversized messages close their socket 1009; SIGTERM stops every process within 10 s.

Real processes, run as deployments run them: Daphne as ``make run`` serves (with
``--websocket-max-message-size 131072``), uvicorn with the media protocol as the README
runs it, a Celery worker as ``make worker`` and beat as ``make beat``. Dial-out streams
run against a real receiver. Timings are taken from the moment of the signal.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from django.conf import settings
from django.db import connection
from websockets.asyncio.server import ServerConnection, serve

from calls.models import Call, CallState
from calls.tests.media_client import MediaClient, chirp
from conftest import Tenant
from events.models import EventType
from events.services import event_emit, webhook_create
from recordings.models import Recording
from streams.formats import FORMATS
from streams.protocol import StreamIdentity
from streams.worker import StreamOptions, StreamWorker, WorkerConfig
from tests.processes import BIN, ROOT, free_port, service_env

pytestmark = pytest.mark.django_db(transaction=True)

production_shape_only = pytest.mark.skipif(
    not (
        settings.REDIS_URL
        and str(settings.DATABASES["default"]["ENGINE"]).endswith("postgresql")
    ),
    reason="needs Celery processes on PostgreSQL and Redis (CI's second shape)",
)

# The limit both servers are run with (Makefile, README): 128 KiB.
LIMIT = 131072
OVER_LIMIT = 140 * 1024
EXIT_WITHIN_S = 10.0
FAST = {"SIM_DIAL_MS": "20", "SIM_RING_MS": "50"}

COMMANDS = {
    # `make run`'s command.
    "daphne": [
        str(BIN / "daphne"),
        "--bind",
        "127.0.0.1",
        "--port",
        "{port}",
        "--proxy-headers",
        "--websocket-max-message-size",
        str(LIMIT),
        "config.asgi:application",
    ],
    # The README's media process.
    "uvicorn": [
        str(BIN / "uvicorn"),
        "--loop",
        "uvloop",
        "--ws",
        "config.media_server:MediaWebSocketProtocol",
        "--ws-per-message-deflate",
        "false",
        "--ws-max-size",
        str(LIMIT),
        "--lifespan",
        "on",
        "--proxy-headers",
        "--no-access-log",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "config.asgi:application",
    ],
}


# ---------------------------------------------------------------- processes


@dataclass
class Child:
    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0
    signalled_at: float = 0.0
    exited_at: float = 0.0
    _watch: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self) -> None:
        """SIGTERM, noting when it was sent; the moment of exit is noted as it happens."""

        def watch() -> None:
            self.process.wait()
            self.exited_at = time.monotonic()

        self._watch = threading.Thread(target=watch, daemon=True)
        self.signalled_at = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self._watch.start()

    def exited_within(self, limit: float) -> float:
        """Seconds from SIGTERM to exit (waiting a little past ``limit`` to measure it)."""
        assert self._watch is not None
        self._watch.join(max(0.0, self.signalled_at + limit + 5 - time.monotonic()))
        assert self.exited_at, (
            f"still running {time.monotonic() - self.signalled_at:.1f} s after "
            f"SIGTERM:\n{self.output()[-4000:]}"
        )
        return self.exited_at - self.signalled_at


def _env(tmp_path: Path, *, embedded: bool, **overrides: str) -> dict[str, str]:
    """A child's environment: the run's database, and Redis unless ``embedded``."""
    env = service_env(**FAST, **overrides)
    if embedded:
        # The embedded default: no Redis, so an in-memory channel layer, Celery tasks
        # in-process and the process's own scheduler.
        env.pop("REDIS_URL", None)
    database = connection.settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        # A sqlite:// DATABASE_URL gets none of the options the embedded default opens
        # SQLite with (WAL, a busy timeout, immediate transactions), and concurrent
        # writes then fail at once with "database is locked". The child opens the run's
        # database as `make run` opens its own: var/switchboard.sqlite3, here a link.
        var = tmp_path / "var"
        var.mkdir(exist_ok=True)
        link = var / "switchboard.sqlite3"
        if not link.exists():
            link.symlink_to(Path(database["NAME"]).resolve())
        env.pop("DATABASE_URL", None)
        env["SWITCHBOARD_VAR_DIR"] = str(var)
    return env


@contextmanager
def _child(
    tmp_path: Path, name: str, args: list[str], env: dict[str, str]
) -> Iterator[Child]:
    log = tmp_path / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    child = Child(process, log)
    try:
        yield child
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@contextmanager
def server(
    tmp_path: Path, kind: str, *, embedded: bool = False, **env: str
) -> Iterator[Child]:
    """A real server process on a free loopback port, healthy."""
    port = free_port()
    args = [arg.format(port=port) for arg in COMMANDS[kind]]
    with _child(
        tmp_path, kind, args, _env(tmp_path, embedded=embedded, **env)
    ) as child:
        child.port = port
        deadline = time.monotonic() + 60
        while True:
            if child.process.poll() is not None:
                raise RuntimeError(f"{kind} exited early:\n{child.output()}")
            with suppress(httpx.HTTPError):
                if httpx.get(child.url + "/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not become healthy:\n{child.output()}")
            time.sleep(0.1)
        yield child


def _api(child: Child, tenant: Tenant) -> httpx.Client:
    return httpx.Client(
        base_url=child.url + "/api/v1",
        headers={"Authorization": f"Bearer {tenant.test_key}"},
        timeout=30,
    )


def _ready_session(api: httpx.Client) -> str:
    created = api.post("/sessions", json={"displayName": "limits"})
    assert created.status_code == 201, created.text
    session_id = str(created.json()["data"]["sessionId"])
    api.post(f"/sessions/{session_id}/connect").raise_for_status()
    api.post(f"/test-helpers/sessions/{session_id}/scan").raise_for_status()
    return session_id


def _active_calls(
    api: httpx.Client, session_id: str, *numbers: str, **options: Any
) -> list[str]:
    """Place a call to each number; return their ids once every one is active."""
    ids = []
    for number in numbers:
        placed = api.post(
            f"/sessions/{session_id}/calls",
            json={"to": f"{number}@s.whatsapp.net", **options},
        )
        assert placed.status_code == 201, placed.text
        ids.append(str(placed.json()["data"]["callId"]))
    deadline = time.monotonic() + 20
    for call_id in ids:
        while (state := _state(api, session_id, call_id)) != "active":
            assert time.monotonic() < deadline, f"call {call_id} stayed {state}"
            time.sleep(0.05)
    return ids


def _state(api: httpx.Client, session_id: str, call_id: str) -> str:
    return str(
        api.get(f"/sessions/{session_id}/calls/{call_id}").json()["data"]["state"]
    )


def _media_url(child: Child, session_id: str, call_id: str) -> str:
    return f"ws://127.0.0.1:{child.port}/api/v1/sessions/{session_id}/calls/{call_id}/media"


def _run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _app_failed(output: str) -> bool:
    """An application error a server logged (and answered a socket with 1011)."""
    return (
        "Exception inside application" in output  # Daphne
        or "Exception in ASGI application" in output  # uvicorn
    )


async def _send_quietly(ws: Any, message: bytes | str | list[bytes]) -> None:
    # The server may close while the message is still going out.
    with suppress(websockets.ConnectionClosed):
        await ws.send(message)


# ---------------------------------------------------------------- the size limit


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_a_message_over_the_limit_closes_its_socket_1009_and_the_call_goes_on(
    tenant: Tenant, tmp_path: Path, kind: str
) -> None:
    with server(tmp_path, kind) as child:
        api = _api(child, tenant)
        session_id = _ready_session(api)
        binary_call, text_call, fragments_call, other_call = _active_calls(
            api, session_id, *["15550000001"] * 4
        )

        async def scenario() -> tuple[list[MediaClient], int, MediaClient]:
            key = tenant.test_key
            async with (
                MediaClient(_media_url(child, session_id, binary_call), key) as binary,
                MediaClient(_media_url(child, session_id, text_call), key) as text,
                MediaClient(
                    _media_url(child, session_id, fragments_call), key
                ) as fragments,
                MediaClient(_media_url(child, session_id, other_call), key) as other,
            ):
                refused = [binary, text, fragments]
                for client in [*refused, other]:
                    await client.wait_for(lambda c=client: c.of_type("ready"), 10)
                # The other socket streams to its echo peer the whole time.
                streaming = asyncio.ensure_future(other.stream(chirp(2.0)))
                await asyncio.sleep(0.3)
                await _send_quietly(binary.ws, bytes(OVER_LIMIT))
                await _send_quietly(text.ws, "x" * OVER_LIMIT)
                # One message in two frames, each under the limit.
                half = bytes(OVER_LIMIT // 2)
                await _send_quietly(fragments.ws, [half, half])
                for client in refused:
                    await client.wait_for(lambda c=client: c.close_code is not None, 10)
                heard_before = len(other.audio)
                await streaming
                await asyncio.sleep(0.3)
                heard_after = len(other.audio) - heard_before
                still_open = other.close_code is None
                async with MediaClient(
                    _media_url(child, session_id, binary_call), key
                ) as again:
                    await again.wait_for(lambda: again.of_type("ready"), 10)
                assert still_open
                return refused, heard_after, again

        refused, heard_after, again = _run(scenario())

        for client in refused:
            assert client.close_code == 1009, (
                client.close_code,
                child.output()[-3000:],
            )
            assert str(LIMIT) in client.ws.close_reason, client.ws.close_reason
        # The other socket kept getting its call's audio, 20 ms at a time.
        assert heard_after > 40
        assert [client.of_type("error") for client in refused] == [[], [], []]
        # The calls go on: reconnecting resumes the first.
        for call_id in (binary_call, text_call, fragments_call):
            assert _state(api, session_id, call_id) == "active"
        assert again.of_type("ready")[0]["call"]["state"] == "active"
        assert not _app_failed(child.output())


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_messages_at_the_limit_and_nested_json_get_error_frames_on_an_open_socket(
    tenant: Tenant, tmp_path: Path, kind: str
) -> None:
    with server(tmp_path, kind) as child:
        api = _api(child, tenant)
        session_id = _ready_session(api)
        (call_id,) = _active_calls(api, session_id, "15550000001")

        async def scenario() -> MediaClient:
            url = _media_url(child, session_id, call_id)
            async with MediaClient(url, tenant.test_key) as client:
                await client.wait_for(lambda: client.of_type("ready"), 10)
                await client.ws.send(bytes(LIMIT))
                await client.ws.send("x" * LIMIT)
                await client.ws.send("[" * 4000)
                await client.ws.send('{"type": "mark", "name": ' + "[" * 2000 + "}")
                await client.wait_for(lambda: len(client.of_type("error")) == 4, 10)
                await client.send_json({"type": "mark", "name": "still-here"})
                await client.wait_for(lambda: client.of_type("mark"), 10)
                assert client.close_code is None
                return client

        client = _run(scenario())

        assert [error["code"] for error in client.of_type("error")] == [
            "frame_too_large",
            "message_too_large",
            "invalid_message",
            "invalid_message",
        ]
        assert client.of_type("mark")[0]["name"] == "still-here"
        assert _state(api, session_id, call_id) == "active"
        assert not _app_failed(child.output())


# ---------------------------------------------------------------- dial-out streams


class _Host:
    """The process side of a stream worker, without a call: it records what happens."""

    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(coro)

    def attach(self, worker: StreamWorker) -> None:
        pass

    def detach(self, worker: StreamWorker) -> None:
        pass

    async def transition(self, worker: StreamWorker, state: str, reason: str) -> bool:
        self.states.append((state, reason))
        return True

    async def save_counters(self, worker: StreamWorker) -> None:
        pass

    def hang_up(self, worker: StreamWorker) -> None:
        raise AssertionError("onDisconnect is continue: the call must not end")


@dataclass
class _Receiver:
    """What a receiver saw of the connection Switchboard opened to it."""

    events: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("dialect", ["wavix", "twilio"])
def test_a_stream_receiver_sending_nested_json_is_counted_and_one_sending_too_much_is_closed_1009(
    dialect: str,
) -> None:
    max_bytes = 64 * 1024
    seen = _Receiver()

    async def receiver(ws: ServerConnection) -> None:
        seen.events += [json.loads(await ws.recv())["event"] for _ in range(2)]
        await ws.send("[" * 50_000)
        await ws.send(json.dumps({"event": "mark", "mark": {"name": "after-nesting"}}))
        while (event := json.loads(await ws.recv())["event"]) != "mark":
            pass
        seen.events.append(event)
        await ws.send("x" * (max_bytes + 1))
        with suppress(websockets.ConnectionClosed):
            while True:
                await ws.recv()
        seen.close_code = ws.close_code
        seen.close_reason = ws.close_reason or ""

    async def scenario() -> tuple[StreamWorker, _Host]:
        async with serve(receiver, "127.0.0.1", 0, max_size=None) as listener:
            port = listener.sockets[0].getsockname()[1]
            host = _Host()
            worker = StreamWorker(
                StreamIdentity(
                    call_id="01a1fc4a-0000-7000-8000-00000000c411",
                    stream_id="01a1fc4a-0000-7000-8000-0000000057e4",
                    session_id="01a1fc4a-0000-7000-8000-000000005e55",
                    environment_id="01a1fc4a-0000-7000-8000-0000000000e7",
                    type="oneway",
                    channel="inbound",
                    format=FORMATS["pcm16_16000"],
                ),
                StreamOptions(
                    url=f"ws://127.0.0.1:{port}/bot",
                    headers={},
                    on_disconnect="continue",
                    dialect=dialect,
                    signing_secret="sbsig_test",
                ),
                WorkerConfig(allow_private=True, max_message_bytes=max_bytes),
                host,
            )
            worker.start()
            assert worker.task is not None
            await asyncio.wait_for(worker.task, 20)
            return worker, host

    worker, host = _run(scenario())

    assert seen.events == ["connected", "start", "mark"]
    # The nested frame was counted and ignored; the stream answered the next mark.
    assert worker.protocol_errors == 1
    # The oversized one: Switchboard closed 1009 (never 1011), and says so.
    assert seen.close_code == 1009
    assert str(max_bytes) in seen.close_reason
    assert host.states[-1] == ("stopped", "remote_closed")
    assert "1009" in worker.last_error
    assert worker.last_error.startswith("Switchboard closed"), worker.last_error


# ---------------------------------------------------------------- SIGTERM: servers


async def _drain_sse(response: httpx.Response, ended: dict[str, Any]) -> None:
    try:
        async for chunk in response.aiter_raw():
            ended.setdefault("chunks", []).append(chunk)
    except httpx.HTTPError as exc:
        ended["error"] = repr(exc)
    ended["at"] = time.monotonic()


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("kind", "embedded"),
    [
        pytest.param("daphne", True, id="daphne-embedded"),
        pytest.param("uvicorn", False, id="uvicorn"),
    ],
)
def test_sigterm_stops_a_server_within_10_s_ending_its_calls_socket_and_event_stream(
    tenant: Tenant, tmp_path: Path, kind: str, embedded: bool
) -> None:
    with server(tmp_path, kind, embedded=embedded) as child:
        api = _api(child, tenant)
        session_id = _ready_session(api)
        with_socket, without = _active_calls(
            api, session_id, "15550000001", "15550000002", record=True
        )

        async def scenario() -> tuple[MediaClient, dict[str, Any]]:
            url = _media_url(child, session_id, with_socket)
            async with MediaClient(url, tenant.test_key) as media:
                await media.wait_for(lambda: media.of_type("ready"), 10)
                await media.stream(chirp(0.5))
                async with (
                    httpx.AsyncClient(base_url=child.url, timeout=None) as client,
                    client.stream(
                        "GET",
                        "/api/v1/events",
                        headers={
                            "Authorization": f"Bearer {tenant.test_key}",
                            "Accept": "text/event-stream",
                        },
                    ) as response,
                ):
                    assert response.status_code == 200
                    sse: dict[str, Any] = {}
                    draining = asyncio.ensure_future(_drain_sse(response, sse))
                    await asyncio.sleep(0.3)
                    assert sse.get("chunks"), "the event stream sent nothing"
                    child.terminate()
                    await asyncio.wait_for(draining, EXIT_WITHIN_S)
                await media.wait_for(
                    lambda: media.close_code is not None, EXIT_WITHIN_S
                )
                return media, sse

        media, sse = _run(scenario())
        elapsed = child.exited_within(EXIT_WITHIN_S)

    output = child.output()
    assert elapsed <= EXIT_WITHIN_S, f"exited {elapsed:.1f} s after SIGTERM:\n{output}"
    assert child.process.returncode in (0, -signal.SIGTERM), output
    # It stopped by itself, not at the deadline that cuts stragglers short.
    assert "exiting now" not in output, output
    # The socket was told, then closed normally; the event stream ended cleanly.
    (ended,) = media.of_type("ended")
    assert ended["call"]["endReason"] == "failed"
    assert ended["call"]["endDetail"]["code"] == "server_shutdown"
    assert media.close_code == 1000
    assert "error" not in sse, sse
    assert sse["at"] - child.signalled_at < EXIT_WITHIN_S
    # Both calls ended, in the database too (not left for the reaper).
    for call_id in (with_socket, without):
        call = Call.objects.get(public_id=call_id)
        assert call.state == CallState.ENDED
        assert call.end_reason == "failed"
        assert (call.end_detail or {}).get("code") == "server_shutdown"
    if embedded:
        # Finalised in-process before the process went: the three WAVs of each call.
        for call_id in (with_socket, without):
            assert Recording.objects.filter(call__public_id=call_id).count() == 3


@dataclass
class _SlowReceiver:
    url: str
    arrived: threading.Event


@contextmanager
def _slow_webhook_receiver() -> Iterator[_SlowReceiver]:
    """A webhook receiver that holds every request until the test ends."""
    arrived = threading.Event()
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived.set()
            release.wait(60)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    listener.daemon_threads = True
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        yield _SlowReceiver(
            f"http://127.0.0.1:{listener.server_address[1]}/hooks", arrived
        )
    finally:
        release.set()
        listener.shutdown()
        listener.server_close()


@pytest.mark.timeout(180)
def test_sigterm_stops_an_embedded_daphne_within_10_s_with_webhooks_stuck_on_a_slow_receiver(
    tenant: Tenant, tmp_path: Path
) -> None:
    with (
        _slow_webhook_receiver() as hooks,
        server(tmp_path, "daphne", embedded=True, WEBHOOK_TIMEOUT_S="60") as child,
    ):
        api = _api(child, tenant)
        created = api.post("/webhooks", json={"url": hooks.url, "events": ["*"]})
        assert created.status_code == 201, created.text
        # Far more deliveries than the embedded sender's threads: a queue builds up.
        for _ in range(12):
            assert (
                api.post("/sessions", json={"displayName": "busy"}).status_code == 201
            )
        session_id = _ready_session(api)
        _active_calls(api, session_id, "15550000002")
        assert hooks.arrived.wait(10)
        child.terminate()
        elapsed = child.exited_within(EXIT_WITHIN_S)

    assert elapsed <= EXIT_WITHIN_S, (
        f"exited {elapsed:.1f} s after SIGTERM:\n{child.output()}"
    )


# ---------------------------------------------------------------- SIGTERM: Celery


@pytest.mark.production_shape
@production_shape_only
@pytest.mark.timeout(180)
@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_sigterm_stops_a_celery_worker_busy_with_a_long_task_within_10_s(
    tenant: Tenant, tmp_path: Path, pool: str
) -> None:
    # `make worker` runs the default pool (prefork); the other tests' workers run solo.
    args = [str(BIN / "celery"), "-A", "config", "worker", "--loglevel", "INFO"]
    args += ["--pool", pool, "--concurrency", "1", "--hostname", f"sig-{pool}@%h"]
    env = _env(tmp_path, embedded=False, WEBHOOK_TIMEOUT_S="60")
    with (
        _slow_webhook_receiver() as hooks,
        _child(tmp_path, f"worker-{pool}", args, env) as worker,
    ):
        webhook_create(environment=tenant.test, url=hooks.url, events=["*"])
        event_emit(environment=tenant.test, type=EventType.SESSION_CREATED, data={})
        # The worker is sending it: a task that would hold a warm shutdown for 60 s.
        assert hooks.arrived.wait(60), worker.output()
        worker.terminate()
        elapsed = worker.exited_within(EXIT_WITHIN_S)

    output = worker.output()
    assert elapsed <= EXIT_WITHIN_S, f"exited {elapsed:.1f} s after SIGTERM:\n{output}"


@pytest.mark.production_shape
@production_shape_only
@pytest.mark.timeout(120)
def test_sigterm_stops_celery_beat_within_10_s(tmp_path: Path) -> None:
    args = [str(BIN / "celery"), "-A", "config", "beat", "--loglevel", "INFO"]
    args += ["-s", str(tmp_path / "beat-schedule")]
    with _child(tmp_path, "beat", args, _env(tmp_path, embedded=False)) as beat:
        deadline = time.monotonic() + 60
        while "beat: Starting..." not in beat.output():
            assert beat.process.poll() is None, beat.output()
            assert time.monotonic() < deadline, beat.output()
            time.sleep(0.1)
        time.sleep(1)
        beat.terminate()
        elapsed = beat.exited_within(EXIT_WITHIN_S)

    assert elapsed <= EXIT_WITHIN_S, (
        f"exited {elapsed:.1f} s after SIGTERM:\n{beat.output()}"
    )
