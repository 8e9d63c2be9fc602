"""REST load: open-loop call creation and call listing against real server processes.

Each step sends requests at a fixed rate whatever the answers (open loop: a slow server
meets more load, as it would in life, instead of the generator politely waiting), for
``--seconds`` each: ``GET /sessions/{id}/calls``, then ``POST /sessions/{id}/calls`` to a
simulated peer that answers and hangs up at once, waiting between steps until the server
is idle again. The CPU of a creation includes the whole life of its call (dial, ring,
answer, hang-up: four state changes and their events), which the server hosts. It prints, per shape, kind and rate, the rate
achieved, errors (non-2xx answers and failed requests), p50/p99 latency and the server
process's CPU per request (all its threads, from /proc).

Shapes:
- ``embedded``: what ``make run`` serves (one process, SQLite, in-memory channel layer).
- ``production``: PostgreSQL (a scratch database ``switchboard_bench``), the Redis channel
  layer, one Celery worker, one server process — needs the services of this machine.

    .venv/bin/python bench/rest.py                                # both shapes, 50 100 200/s
    .venv/bin/python bench/rest.py --shape production --rates 100 --seconds 60

Targets (issue): production 100 requests/s with 0 errors and p99 < 100 ms; embedded 50/s
with 0 errors. The generator runs in this process; the server is pinned to one core when
the machine has two or more, and the generator to another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PEER = "15550000006@s.whatsapp.net"  # answers, then hangs up after SIM_HANGUP_AFTER_MS
BENCH_DB = "switchboard_bench"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(shape: str, var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        SWITCHBOARD_VAR_DIR=str(var_dir),
        LOG_LEVEL="WARNING",
        DEBUG="false",
        API_RATE_LIMIT_PER_MINUTE="10000000",
        SIM_DIAL_MS="0",
        SIM_RING_MS="0",
        SIM_HANGUP_AFTER_MS="10",
        MEDIA_MAX_CALLS="0",
    )
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    if shape == "production":
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}"
        env["REDIS_URL"] = "redis://127.0.0.1:6379/7"
    return env


def _fresh_database() -> None:
    import psycopg

    with psycopg.connect(
        "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
    ) as db:
        db.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {BENCH_DB}")


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


@contextmanager
def _process(
    args: list[str], env: dict[str, str], log: Path, core: int | None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(process.pid, {core})
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server did not become healthy:\n{log.read_text()[-2000:]}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _quiet(pid: int) -> None:
    """Wait (up to two minutes) until the server is back to idle (under 10 % of a core
    over a second), so one step's backlog is not measured in the next."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        before = _cpu_seconds(pid)
        await asyncio.sleep(1.0)
        if _cpu_seconds(pid) - before < 0.1:
            return


async def _load(
    client: httpx.AsyncClient, rate: float, seconds: float, request: Any, pid: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    first_error: list[str] = []
    tasks: list[asyncio.Task[None]] = []

    async def one() -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            response = await request(client)
            ok = response.status_code < 300
            if not ok and not first_error:
                first_error.append(f"{response.status_code} {response.text[:300]}")
        except httpx.HTTPError as exc:
            ok = False
            if not first_error:
                first_error.append(repr(exc))
        latencies.append(time.perf_counter() - started)
        if not ok:
            errors += 1

    cpu_before = _cpu_seconds(pid)
    begin = time.perf_counter()
    total = int(rate * seconds)
    for n in range(total):
        due = begin + n / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one()))
    sent_over = time.perf_counter() - begin
    await asyncio.gather(*tasks)
    cpu = _cpu_seconds(pid) - cpu_before
    ms = np.array(latencies) * 1000
    return {
        "sent": total,
        "achieved": total / max(sent_over, 1e-9),
        "completed_per_s": (total - errors) / (time.perf_counter() - begin),
        "errors": errors,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "cpu_ms": cpu * 1000 / total,
        "first_error": first_error[0] if first_error else "",
    }


def _server_command(kind: str, port: int) -> list[str]:
    if kind == "daphne":
        daphne = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port)]
        return [*daphne, "config.asgi:application"]
    return [
        str(BIN / "uvicorn"),
        "--loop",
        "uvloop",
        "--ws",
        "config.media_server:MediaWebSocketProtocol",
        "--lifespan",
        "on",
        "--no-access-log",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "config.asgi:application",
    ]


def run_shape(
    shape: str,
    rates: list[int],
    seconds: float,
    server_core: int | None,
    server_kind: str = "daphne",
) -> None:
    with (
        tempfile.TemporaryDirectory(prefix=f"sb-rest-{shape}-") as tmp,
        ExitStack() as stack,
    ):
        var_dir = Path(tmp)
        env = _env(shape, var_dir)
        if shape == "production":
            _fresh_database()
        _run([str(BIN / "python"), "manage.py", "migrate", "--noinput"], env)
        keys = json.loads(
            _run([str(BIN / "python"), "manage.py", "bootstrap_demo", "--json"], env)
        )
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        if shape == "production":
            stack.enter_context(
                _process(
                    [
                        str(BIN / "celery"),
                        "-A",
                        "config",
                        "worker",
                        "-c",
                        "2",
                        "-l",
                        "WARNING",
                    ],
                    env,
                    var_dir / "worker.log",
                    None,
                )
            )
        log = var_dir / "server.log"
        server = stack.enter_context(
            _process(
                _server_command(server_kind, port),
                env,
                log,
                server_core,
            )
        )
        _wait_healthy(url, server, log)
        headers = {"Authorization": f"Bearer {keys['testKey']}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as setup:
            session = setup.post("/api/v1/sessions", json={"displayName": "bench"})
            session_id = session.json()["data"]["sessionId"]
            setup.post(f"/api/v1/sessions/{session_id}/connect").raise_for_status()
            setup.post(
                f"/api/v1/test-helpers/sessions/{session_id}/scan"
            ).raise_for_status()
        calls = f"/api/v1/sessions/{session_id}/calls"

        async def create(client: httpx.AsyncClient) -> httpx.Response:
            return await client.post(calls, json={"to": PEER, "record": False})

        async def listing(client: httpx.AsyncClient) -> httpx.Response:
            return await client.get(calls, params={"limit": 20})

        async def measure() -> None:
            limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
            async with httpx.AsyncClient(
                base_url=url, headers=headers, timeout=30, limits=limits
            ) as client:
                for kind, request in (("list", listing), ("create", create)):
                    for rate in rates:
                        result = await _load(client, rate, seconds, request, server.pid)
                        verdict = "ok" if result["errors"] == 0 else "errors"
                        print(
                            f"{shape:>10} {kind:>6} {rate:>6} "
                            f"{result['achieved']:>9.1f} {result['completed_per_s']:>9.1f} "
                            f"{result['errors']:>6} {result['p50']:>8.1f} "
                            f"{result['p99']:>8.1f} {result['cpu_ms']:>7.2f}  {verdict}",
                            flush=True,
                        )
                        if result["first_error"]:
                            print(f"{'':>10} first error: {result['first_error']}")
                        await _quiet(server.pid)  # the step's calls have ended

        asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", choices=["embedded", "production", "both"], default="both"
    )
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--server",
        choices=["daphne", "uvicorn"],
        default="daphne",
        help="the server process: Daphne, or uvicorn with the media protocol",
    )
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_core = cores[0] if len(cores) > 1 else None
    if len(cores) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cores[-1]})
    if shutil.which("daphne", path=str(BIN)) is None:
        raise SystemExit("daphne is not installed in this environment (make install)")
    print(
        f"Open-loop REST load, {args.seconds:.0f} s per step; server on core "
        f"{server_core}, generator on core {cores[-1] if cores else None}"
    )
    print(
        f"{'shape':>10} {'kind':>6} {'rate/s':>6} {'sent/s':>9} {'ok/s':>9} "
        f"{'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>7}"
    )
    shapes = ["embedded", "production"] if args.shape == "both" else [args.shape]
    for shape in shapes:
        run_shape(shape, args.rates, args.seconds, server_core, args.server)


if __name__ == "__main__":
    main()
