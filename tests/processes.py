"""Real server and worker processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
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
