"""Real server and worker processes for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_env(**overrides: str) -> dict[str, str]:
    """The environment of a child process that shares this test run's database."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{settings['NAME']}"
    else:
        user = settings["USER"] or "postgres"
        env["DATABASE_URL"] = (
            f"postgres://{user}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}"
            f"/{settings['NAME']}"
        )
    env.update(overrides)
    return env


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_healthy(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.output()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not become healthy:\n{server.output()}")


@contextmanager
def _server(
    tmp_path: Path, name: str, command: list[str], env: dict[str, str]
) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command[:1], *[arg.format(port=port) for arg in command[1:]]],
            cwd=ROOT,
            env=service_env(**env),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log)
    try:
        _wait_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def daphne(tmp_path: Path, name: str, **env: str) -> AbstractContextManager[Server]:
    """A real Daphne process serving config.asgi on a free loopback port."""
    command = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", "{port}"]
    return _server(tmp_path, name, [*command, "config.asgi:application"], env)


def uvicorn_media(
    tmp_path: Path, name: str, **env: str
) -> AbstractContextManager[Server]:
    """A real media process as the README runs it: uvicorn, uvloop, MediaWebSocketProtocol."""
    command = [
        str(BIN / "uvicorn"),
        "--loop",
        "uvloop",
        "--ws",
        "config.media_server:MediaWebSocketProtocol",
        "--ws-per-message-deflate",
        "false",
        "--ws-max-size",
        "131072",
        "--lifespan",
        "on",
        "--no-access-log",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    return _server(tmp_path, name, [*command, "config.asgi:application"], env)


@contextmanager
def celery_worker(
    tmp_path: Path, *, beat: bool = False, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker (optionally with beat) on the run's Redis."""
    log = tmp_path / "celery.log"
    args = [
        str(BIN / "celery"),
        "-A",
        "config",
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "INFO",
    ]
    if beat:
        args += ["-B", "-s", str(tmp_path / "beat-schedule")]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=service_env(**env),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def _port_below_ephemeral_range() -> int:
    """A free port the kernel never hands out on its own (Linux's ephemeral range starts
    at 32768): while a server on it is down, no outgoing connection and no other test's
    ``free_port()`` can take it, so the server can come back on the same port."""
    import random

    for port in random.sample(range(30000, 32768), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 30000-32767")


class RedisServer:
    """A private ``redis-server`` on a loopback port of its own, with no persistence:
    killing it loses everything it held, as a crashed Redis without a volume does."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian: redis-server)")
        self.binary = binary
        self.port = _port_below_ephemeral_range()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = tmp_path / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = tmp_path / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> None:
        """Start it (again) on its port and wait until it answers PING."""
        import redis

        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited:\n{self.output()}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer:\n{self.output()}")
                time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL it: connections drop at once and nothing it held survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def redis_server(tmp_path: Path, name: str = "redis") -> Iterator[RedisServer]:
    """A private Redis for one test (never the machine's shared one)."""
    server = RedisServer(tmp_path, name)
    server.start()
    try:
        yield server
    finally:
        server.kill()


class Group:
    """A process started in a session of its own, so that it and its children (a
    prefork pool) can be killed together, as a crashed machine or container kills them."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def kill(self) -> None:
        """SIGKILL the process and every child it started."""
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 15) -> None:
        """Ask the whole group to stop (SIGTERM: warm shutdown); kill it if it lingers."""
        if self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def _group(
    tmp_path: Path, name: str, args: list[str], env: dict[str, str]
) -> Iterator[Group]:
    log = tmp_path / f"{name}.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=service_env(**env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    group = Group(process, log)
    try:
        yield group
    finally:
        group.stop()


def worker_group(
    tmp_path: Path,
    name: str,
    env: dict[str, str],
    *,
    pool: str = "solo",
    concurrency: int = 1,
) -> AbstractContextManager[Group]:
    """A real Celery worker (and its pool's children) that a test may SIGKILL whole."""
    args = [
        str(BIN / "celery"),
        "-A",
        "config",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}-{os.getpid()}@%h",
    ]
    return _group(tmp_path, name, args, env)


def beat(
    tmp_path: Path, name: str = "beat", **env: str
) -> AbstractContextManager[Group]:
    """A real Celery beat process, queueing config.schedule's periodic jobs."""
    args = [
        str(BIN / "celery"),
        "-A",
        "config",
        "beat",
        "--loglevel",
        "INFO",
        "-s",
        str(tmp_path / f"{name}-schedule"),
    ]
    return _group(tmp_path, name, args, env)


@contextmanager
def uvicorn_media_at_own_url(tmp_path: Path, name: str, **env: str) -> Iterator[Server]:
    """A media process as ``uvicorn_media`` starts it, whose environment may name its
    own port: ``{port}`` in a value (``SWITCHBOARD_PROCESS_URL="ws://127.0.0.1:{port}"``)."""
    port = free_port()
    log = tmp_path / f"{name}.log"
    command = [
        str(BIN / "uvicorn"),
        "--loop",
        "uvloop",
        "--ws",
        "config.media_server:MediaWebSocketProtocol",
        "--ws-per-message-deflate",
        "false",
        "--ws-max-size",
        "131072",
        "--lifespan",
        "on",
        "--no-access-log",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "config.asgi:application",
    ]
    own = {key: value.format(port=port) for key, value in env.items()}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=service_env(**own),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log)
    try:
        _wait_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
