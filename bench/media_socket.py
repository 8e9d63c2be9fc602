"""Media-socket load benchmark: N concurrent echo calls over the real media socket.

Each call streams 20 ms frames (Float32LE mono 16 kHz, 1280 bytes) in real time to the
simulated echo peer and times every frame's echo: round trip p50/p99 (minus the peer's
100 ms), frames lost (no echo by the end) and late (round trip over 40 ms), and the
server's CPU. The server runs pinned to one core, the load generator to the other.
The same invocation runs a bare ``websockets`` asyncio echo server through the same
generator as the reference, and prints the largest N with p99 < 40 ms and no loss for
each, and their ratio to the bare reference per core.

Switchboard's servers: ``uvicorn`` is the process ``make run`` starts (its exact command
line, embedded default), ``production`` the production shape's media process (the
README's uvicorn command, production settings, PostgreSQL and the Redis channel layer:
a scratch database ``--database-url`` is dropped and created, ``--redis-url`` flushed),
``daphne`` what ``make run-daphne`` starts. ``--recording both`` measures each of them
with the calls recorded and not, and the summary table puts every row side by side.

    .venv/bin/python bench/media_socket.py                      # bare + Daphne + uvicorn
    .venv/bin/python bench/media_socket.py --server all --recording both   # the table
    .venv/bin/python bench/media_socket.py --server bare --steps 100 200 --seconds 5

The generator and servers run SCHED_RR when allowed (``--no-realtime`` to opt out): on a
machine busy with other work, the neighbours' CPU use otherwise shows up as latency.
``--profile`` prints where each server spends the measured window. All traffic stays on 127.0.0.1. The results tables are written
into bench/README.md (``--no-readme`` leaves it alone). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _loadgen as lg

ROOT = Path(__file__).resolve().parents[1]
README = Path(__file__).resolve().parent / "README.md"
BIN = Path(sys.executable).parent  # the virtualenv's daphne and uvicorn
HOST = "127.0.0.1"
ECHO_DELAY_S = 0.100  # the simulator's echo peer answers 100 ms later
ECHO_PEER = "15550000001@s.whatsapp.net"
BARE_STEPS = [100, 200, 300, 400, 500, 550, 600, 650, 700, 750, 800, 850, 900, 1000]
SWITCHBOARD_STEPS = [
    25,
    50,
    75,
    100,
    150,
    200,
    250,
    300,
    350,
    375,
    400,
    425,
    450,
    475,
    500,
    550,
    600,
]
GOAL = 0.8  # of the bare reference's calls per core
RESULTS_START = "<!-- media_socket results: start -->"
RESULTS_END = "<!-- media_socket results: end -->"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server not listening on {port} after {timeout:.0f} s")


@dataclass
class Server:
    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    echo_delay_s: float
    expect_ready: bool
    api_key: str = ""
    record: bool = True
    sessions: list[str] = field(default_factory=list)
    profile: Path | None = None  # path prefix of per-window profiles
    windows: list[int] = field(default_factory=list)  # N of each profiled window

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def name(self) -> str:
        """The server and, for Switchboard's, whether its calls are recorded."""
        if self.kind == "bare":
            return self.kind
        return self.kind + ("" if self.record else " (not recorded)")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                self.proc.kill()
                self.proc.wait()


def pinned(core: int, cmd: list[str], profile: Path | None = None) -> list[str]:
    """``cmd`` run on ``core`` only (``taskset`` execs it: the pid stays the server's).

    With ``profile`` (a path prefix), the Python script ``cmd`` runs under
    ``_loadgen.py profiled``: cProfile over each step's measured window."""
    if profile is not None:
        script = cmd[1:] if cmd[0] == sys.executable else cmd
        cmd = [sys.executable, lg.__file__, "profiled", "--out", str(profile), *script]
    return ["taskset", "-c", str(core), *cmd]


def print_profile(server: Server, results: Sequence[lg.StepResult]) -> None:
    """Print the profile of the largest passing step (else the last one measured)."""
    import pstats

    if server.profile is None or not server.windows:
        return
    best, _ = largest_pass(results)
    window = (
        server.windows.index(best)
        if best in server.windows
        else len(server.windows) - 1
    )
    path = Path(f"{server.profile}.{window}.prof")
    if not path.exists():
        print(f"(no profile written at {path})")
        return
    limit = 25
    stats = pstats.Stats(str(path), stream=sys.stdout)
    print(
        f"\n-- {server.kind}: profile of the measured window at N = "
        f"{server.windows[window]} ({path}); by own time --"
    )
    stats.sort_stats("tottime").print_stats(limit)
    print("-- the project's own functions, by cumulative time --")
    stats.sort_stats("cumulative").print_stats(
        rf"{re.escape(str(ROOT))}/(calls|config|assets|accounts|events)/", limit
    )


def reset_database(url: str) -> None:
    """Drop and create the scratch database ``url`` names."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SystemExit(f"not a plain database name: {name!r}")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def switchboard_env(var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        SWITCHBOARD_VAR_DIR=str(var_dir),
        SIM_DIAL_MS="0",
        SIM_RING_MS="0",
        API_RATE_LIMIT_PER_MINUTE="1000000",
        CALL_RING_TIMEOUT_S="600",
        PYTHONUNBUFFERED="1",
        # The bench finds the capacity; the process must not refuse calls first.
        MEDIA_MAX_CALLS="0",
    )
    return env


def start_bare(
    core: int, workdir: Path, profile: bool = False, uvloop: bool = False
) -> Server:
    port = free_port()
    log = workdir / "bare.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            pinned(
                core,
                [
                    sys.executable,
                    str(Path(lg.__file__)),
                    "serve-bare",
                    "--port",
                    str(port),
                    *(["--uvloop"] if uvloop else []),
                ],
                workdir / "bare" if profile else None,
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server("bare", port, proc, log, echo_delay_s=0.0, expect_ready=False)
    server.profile = workdir / "bare" if profile else None
    wait_for_port(port, proc, 15)
    return server


# What `make run` serves (the Makefile's command line), and the README's production
# media process; Daphne as `make run-daphne` starts it.
UVICORN = [
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--ws",
    "config.media_server:MediaWebSocketProtocol",
    "--ws-per-message-deflate",
    "false",
    "--ws-max-size",
    "131072",
    "--lifespan",
    "on",
    "--proxy-headers",
]


def start_switchboard(
    kind: str,
    core: int,
    workdir: Path,
    *,
    record: bool = True,
    profile: bool = False,
    database_url: str = "",
    redis_url: str = "",
) -> Server:
    var_dir = workdir / f"var-{kind}-{'rec' if record else 'norec'}"
    var_dir.mkdir()
    env = switchboard_env(var_dir)
    if kind == "production":
        reset_database(database_url)
        flush_redis(redis_url)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.production",
            SECRET_KEY="bench-" + os.urandom(16).hex(),
            ALLOWED_HOSTS=HOST,
            # TLS ends at the proxy in production; the bench talks to the process.
            SECURE_SSL_REDIRECT="false",
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
        )
    manage = [sys.executable, str(ROOT / "manage.py")]
    for step in (["migrate", "--noinput"], ["bootstrap_demo", "--json"]):
        boot = subprocess.run(
            [*manage, *step], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if boot.returncode:
            raise RuntimeError(
                f"manage.py {step[0]} failed ({boot.returncode}):\n"
                f"{(boot.stderr or boot.stdout)[-2000:]}"
            )
    match = re.search(r"\{.*\}", boot.stdout, re.S)
    if not match:
        raise RuntimeError(f"bootstrap_demo printed no JSON: {boot.stdout!r}")
    api_key = json.loads(match.group(0))["testKey"]
    port = free_port()
    if kind == "daphne":
        cmd = [
            str(BIN / "daphne"),
            "--bind",
            HOST,
            "--port",
            str(port),
            "--proxy-headers",
            "--websocket-max-message-size",
            "131072",
            "config.asgi:application",
        ]
    else:
        cmd = [str(BIN / "uvicorn"), "--host", HOST, "--port", str(port), *UVICORN]
        if kind == "production":
            cmd.append("--no-access-log")
        cmd.append("config.asgi:application")
    log = var_dir.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            pinned(core, cmd, var_dir if profile else None),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(kind, port, proc, log, echo_delay_s=ECHO_DELAY_S, expect_ready=True)
    server.api_key = api_key
    server.record = record
    server.profile = var_dir if profile else None
    try:
        wait_for_port(port, proc, 60)
    except RuntimeError:
        server.stop()
        raise RuntimeError(f"{kind} did not start:\n{server.log_tail()}") from None
    return server


# -- Switchboard REST ---------------------------------------------------------------
class Api:
    def __init__(self, server: Server, record: bool = True) -> None:
        import httpx

        self.server = server
        self.record = record
        self.http = httpx.AsyncClient(
            base_url=f"http://{HOST}:{server.port}/api/v1",
            headers={"Authorization": f"Bearer {server.api_key}"},
            timeout=30,
            limits=httpx.Limits(max_connections=16),
            trust_env=False,  # never a proxy: everything stays on 127.0.0.1
        )

    async def request(self, method: str, path: str, body: object = None) -> dict:
        response = await self.http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(
                f"{method} {path} -> {response.status_code} {response.text[:300]}"
            )
        return response.json() if response.content else {}

    async def ensure_sessions(self, count: int) -> None:
        while len(self.server.sessions) < count:
            index = len(self.server.sessions)
            made = await self.request(
                "POST", "/sessions", {"displayName": f"bench-{index}"}
            )
            sid = made["data"]["sessionId"]
            await self.request("POST", f"/sessions/{sid}/connect")
            await self.request("POST", f"/test-helpers/sessions/{sid}/scan")
            self.server.sessions.append(sid)

    async def place_call(self, sid: str, gate: asyncio.Semaphore) -> tuple[str, str]:
        async with gate:
            made = await self.request(
                "POST",
                f"/sessions/{sid}/calls",
                {"to": ECHO_PEER, "record": self.record},
            )
        cid = made["data"]["callId"]
        deadline = time.monotonic() + 30
        state = made["data"].get("state")
        while state != "active":
            if state == "ended" or time.monotonic() > deadline:
                raise RuntimeError(f"call {cid} did not become active (state {state})")
            await asyncio.sleep(0.05)
            async with gate:
                got = await self.request("GET", f"/sessions/{sid}/calls/{cid}")
            state = got["data"].get("state")
        return sid, cid

    async def place_calls(self, n: int, per_session: int) -> list[tuple[str, str]]:
        await self.ensure_sessions(math.ceil(n / per_session))
        gate = asyncio.Semaphore(8)
        sids = [self.server.sessions[i // per_session] for i in range(n)]
        return list(await asyncio.gather(*(self.place_call(s, gate) for s in sids)))

    async def end_calls(self, calls: Sequence[tuple[str, str]]) -> list[str]:
        gate = asyncio.Semaphore(8)

        async def end(sid: str, cid: str) -> str:
            async with gate:
                try:
                    await self.request("POST", f"/sessions/{sid}/calls/{cid}/end")
                except RuntimeError as exc:
                    return str(exc)
            return ""

        errors = await asyncio.gather(*(end(s, c) for s, c in calls))
        return [e for e in errors if e]

    async def aclose(self) -> None:
        await self.http.aclose()


# -- steps --------------------------------------------------------------------------
async def run_step(server: Server, n: int, args: argparse.Namespace) -> lg.StepResult:
    n_frames = round((args.warmup + args.seconds) / lg.FRAME_S)
    api = Api(server, server.record) if server.kind != "bare" else None
    calls: list[tuple[str, str]] = []
    clients: list[lg.Client] = []
    try:
        if api is None:
            paths = ["/"] * n
            headers: dict[str, str] = {}
        else:
            try:
                calls = await api.place_calls(n, args.calls_per_session)
            except Exception as exc:
                return lg.StepResult(n=n, connected=0, setup_error=f"calls: {exc}")
            paths = [f"/api/v1/sessions/{s}/calls/{c}/media" for s, c in calls]
            headers = {"Authorization": f"Bearer {server.api_key}"}
        clients, errors = await lg.open_clients(
            HOST,
            server.port,
            paths,
            headers,
            n_frames,
            server.expect_ready,
            kind=args.client,
        )
        if errors:
            result = lg.StepResult(n=n, connected=len(clients))
            result.setup_error = (
                f"{len(errors)} sockets failed: {Counter(errors).most_common(3)}"
            )
            return result
        result = await lg.stream(
            clients,
            args.warmup,
            args.seconds,
            server.echo_delay_s,
            server.proc.pid,
            profile_window=server.profile is not None,
        )
        if server.profile is not None:
            server.windows.append(n)
        result.n = n
        return result
    finally:
        await lg.close_clients(clients)
        if api is not None:
            if calls:
                end_errors = await api.end_calls(calls)
                if end_errors:
                    print(
                        f"    ending calls: {len(end_errors)} errors, e.g. {end_errors[0]}"
                    )
            await api.aclose()


def fmt_row(r: lg.StepResult) -> str:
    verdict = "pass" if r.passed else "FAIL"
    return (
        f"| {r.n:>4} | {r.p50_ms:6.1f} | {r.p99_ms:6.1f} | {r.max_ms:7.1f} | {r.lost:>6} "
        f"| {r.late:>6} | {r.server_cpu * 100:8.0f} % | {r.gen_cpu * 100:5.0f} % "
        f"| {r.other_cpu * 100:7.0f} % | {r.send_lag_p99_ms:5.1f} | {verdict} |"
    )


TABLE_HEAD = (
    "|    N | p50 ms | p99 ms |  max ms |   lost |   late | server CPU | gen CPU "
    "| other CPU | lag99 | verdict |\n"
    "|-----:|-------:|-------:|--------:|-------:|-------:|-----------:|--------:"
    "|--------:|------:|---------|"
)


def notes_for(r: lg.StepResult, realtime: bool = False) -> list[str]:
    notes = []
    if r.setup_error:
        notes.append(f"setup: {r.setup_error}")
    if r.disconnects:
        notes.append(f"{r.disconnects} sockets dropped or closed abnormally")
    if r.errors:
        notes.append(f"server error frames: {dict(r.errors)}")
    if r.texts and r.n and r.sent:
        seconds = r.sent / r.n * lg.FRAME_S  # the measured window
        counted = sum(r.texts.values())
        rates = ", ".join(
            f"{kind} {count / r.n / seconds:.1f}"
            for kind, count in r.texts.most_common(4)
        )
        notes.append(
            f"text frames from the server: {counted} in all (per call per second: {rates})"
        )
    if r.buffered_ms_max > 60:
        notes.append(
            f"server reported inbound playout buffers up to {r.buffered_ms_max} ms deep"
        )
    if r.unaligned:
        notes.append(f"{r.unaligned} echoes not aligned to our frames")
    if r.duplicates:
        notes.append(f"{r.duplicates} duplicate echoes")
    if r.n and r.received == 0 and not r.setup_error:
        notes.append("no echo received at all")
    if r.gen_cpu > 0.8:
        notes.append(
            f"WARNING: load generator at {r.gen_cpu:.0%} of its core - it may be the bottleneck"
        )
    if r.other_cpu > 0.2 and realtime:
        notes.append(
            f"({r.other_cpu:.0%} of a core used by other processes or the kernel"
            " meanwhile; SCHED_RR kept them behind the bench)"
        )
    elif r.other_cpu > 0.2:
        notes.append(
            f"WARNING: {r.other_cpu:.0%} of a core used by other processes or the kernel"
            " during the step - numbers are disturbed (SCHED_RR, the default as root, helps)"
        )
    if r.send_lag_p99_ms > 5:
        notes.append(f"WARNING: generator sends late (p99 {r.send_lag_p99_ms:.1f} ms)")
    return notes


async def wait_for_quiet(server: Server, limit_s: float) -> float:
    """Wait (up to ``limit_s``) until other processes use < 20 % of a core; return it."""
    deadline = time.monotonic() + limit_s
    while True:
        all0, srv0, gen0 = (
            lg.machine_busy_seconds(),
            lg.proc_cpu_seconds(server.proc.pid),
            time.process_time(),
        )
        await asyncio.sleep(1.0)
        other = (
            (lg.machine_busy_seconds() - all0)
            - (lg.proc_cpu_seconds(server.proc.pid) - srv0)
            - (time.process_time() - gen0)
        )
        if other < 0.2 or time.monotonic() > deadline:
            return max(other, 0.0)


async def wait_for_idle_server(server: Server, limit_s: float) -> float:
    """Wait (up to ``limit_s``) until the server uses < 5 % of its core: the last
    step's calls have finished ending (on the embedded default their recordings are
    finalised in the server's own process). Return how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = lg.proc_cpu_seconds(server.proc.pid)
        await asyncio.sleep(0.5)
        if lg.proc_cpu_seconds(server.proc.pid) - before < 0.025:
            break
    return time.monotonic() - started


def disturbed(r: lg.StepResult, realtime: bool) -> bool:
    """Did other work on the machine plausibly cause this failure?"""
    if r.send_lag_p99_ms > 5:
        return True
    # Real-time scheduling already puts the bench first; busy neighbours matter less.
    return not realtime and r.other_cpu > 0.25


async def run_server(
    server: Server, steps: Sequence[int], args: argparse.Namespace
) -> list[lg.StepResult]:
    print(f"\n== {server.name} (pid {server.proc.pid}, port {server.port}) ==")
    print(TABLE_HEAD)
    results: list[lg.StepResult] = []
    for n in steps:
        attempts: list[lg.StepResult] = []
        retries = args.disturbed_retries
        while len(attempts) < args.repeats + args.disturbed_retries:
            if server.kind != "bare":
                waited = await wait_for_idle_server(server, args.idle_wait)
                if waited > 2:
                    print(
                        f"    (waited {waited:.0f} s for the server to finish ending "
                        "the last step's calls)"
                    )
            # Under SCHED_RR the neighbours wait for us: one sample, for the record.
            other = await wait_for_quiet(
                server, 0 if args.realtime else args.quiet_wait
            )
            if other >= 0.2:
                print(f"    (machine still busy: {other:.0%} of a core used by others)")
            result = await run_step(server, n, args)
            if (
                not result.passed
                and disturbed(result, args.realtime)
                and retries
                and server.alive()
            ):
                retries -= 1
                print(
                    fmt_row(result).replace("| FAIL |", "| FAIL, disturbed: retrying |")
                )
                for note in notes_for(result, args.realtime):
                    print(f"    {note}")
                continue
            attempts.append(result)
            passes = [a for a in attempts if a.passed]
            if not result.passed or not server.alive() or len(passes) >= args.repeats:
                break
        # A step passes only if every counted repeat passed; show the worst attempt.
        worst = next((a for a in attempts if not a.passed), attempts[-1])
        results.append(worst)
        print(fmt_row(worst), flush=True)
        for note in notes_for(worst, args.realtime):
            print(f"    {note}")
        if not server.alive():
            print(f"    server exited ({server.proc.returncode}):\n{server.log_tail()}")
            break
        if not worst.passed:
            break
    return results


def largest_pass(results: Sequence[lg.StepResult]) -> tuple[int, bool]:
    """The largest passing N, and whether it is only a lower bound (nothing failed)."""
    best = max((r.n for r in results if r.passed), default=0)
    return best, bool(results) and all(r.passed for r in results)


def summary(all_results: dict[str, list[lg.StepResult]]) -> str:
    bare, bare_open = largest_pass(all_results.get("bare", []))
    parts = [f"bare websockets {'≥ ' if bare_open else ''}{bare}"]
    for kind, results in all_results.items():
        if kind == "bare":
            continue
        best, best_open = largest_pass(results)
        text = f"Switchboard on {kind} {'≥ ' if best_open else ''}{best}"
        if not results:
            text = f"Switchboard on {kind} not measured (it did not start)"
        elif bare:
            ratio = best / bare
            # "meets" holds unless bare could go higher; "below" unless Switchboard could.
            settled = not bare_open if ratio >= GOAL else not best_open
            verdict = ("meets" if ratio >= GOAL else "below") + f" the {GOAL:.0%} goal"
            if not settled:
                verdict = "undecided: add steps past the ones that all passed"
            text += f" ({ratio:.0%} of bare; {verdict})"
        parts.append(text)
    return "Largest N with p99 < 40 ms and no loss: " + "; ".join(parts)


TITLES = {
    "bare": "bare `websockets` echo",
    "uvicorn": "`make run` (uvicorn, embedded)",
    "production": "production media process",
    "daphne": "`make run-daphne` (Daphne)",
}


def side_by_side(all_results: dict[str, list[lg.StepResult]]) -> str:
    """Every server in one table: its largest passing N, its share of the bare
    reference's, and its CPU at the loads several servers measured (a server's rows
    with and without recording differ, at one load, by what recording costs)."""
    bare, _ = largest_pass(all_results.get("bare", []))
    cpu = {
        name: {r.n: r.server_cpu for r in results if not r.setup_error}
        for name, results in all_results.items()
    }
    # The largest loads at which at least two Switchboard servers ran.
    counts = Counter(n for name, by_n in cpu.items() if name != "bare" for n in by_n)
    loads = sorted(n for n, seen in counts.items() if seen >= 2)[-4:]
    head = (
        "| server | recorded | largest N passing | of bare | "
        + " | ".join(f"CPU at {n}" for n in loads)
        + " |\n|---|---|---:|---:|"
        + "---:|" * len(loads)
    )
    lines = [head]
    for name, results in all_results.items():
        kind, _, rest = name.partition(" ")
        recorded = "—" if kind == "bare" else ("no" if rest else "yes")
        best, best_open = largest_pass(results)
        share = f"{best / bare:.0%}" if bare and results else "—"
        cells = [
            f"{cpu[name][n] * 100:.0f} %" if n in cpu[name] else "—" for n in loads
        ]
        lines.append(
            f"| {TITLES.get(kind, kind)} | {recorded} | "
            f"{'≥ ' if best_open else ''}{best} | {share} | " + " | ".join(cells) + " |"
        )
    costs = []
    for kind in TITLES:
        on, off = cpu.get(kind, {}), cpu.get(f"{kind} (not recorded)", {})
        passed_on = {r.n for r in all_results.get(kind, []) if r.passed}
        passed_off = {
            r.n for r in all_results.get(f"{kind} (not recorded)", []) if r.passed
        }
        both = sorted(passed_on & passed_off)
        if both:
            points = ", ".join(f"{(on[n] - off[n]) * 100:+.0f} at {n}" for n in both)
            costs.append(f"{TITLES[kind]}: {points} calls")
    if costs:
        lines.append(
            "\nRecording's cost (CPU with minus without, in points of a core, at the"
            " loads both passed): " + "; ".join(costs)
        )
    return "\n".join(lines)


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model or platform.processor()}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def write_readme(text: str) -> None:
    if not README.exists():
        print(f"(no {README}; results not written)")
        return
    page = README.read_text()
    if RESULTS_START not in page or RESULTS_END not in page:
        page = page.rstrip() + f"\n\n{RESULTS_START}\n{RESULTS_END}\n"
    head, rest = page.split(RESULTS_START, 1)
    tail = rest.split(RESULTS_END, 1)[1]
    README.write_text(f"{head}{RESULTS_START}\n{text.rstrip()}\n{RESULTS_END}{tail}")
    print(f"\nResults written to {README.relative_to(ROOT)}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--server",
        choices=["bare", "daphne", "uvicorn", "production", "both", "all"],
        default="both",
        help="Switchboard server to measure besides the bare reference (bare: the "
        "reference only; uvicorn: what `make run` serves; production: the production "
        "media process; both: Daphne and uvicorn; all: uvicorn, production and Daphne)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        help="N for every server (overrides the two below)",
    )
    parser.add_argument("--bare-steps", type=int, nargs="+", default=BARE_STEPS)
    parser.add_argument(
        "--switchboard-steps", type=int, nargs="+", default=SWITCHBOARD_STEPS
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measured streaming per step"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="unmeasured streaming first"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="a step passes if every repeat does"
    )
    parser.add_argument(
        "--disturbed-retries",
        type=int,
        default=1,
        help="rerun a failed step this often when other load on the machine disturbed it",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=5.0,
        help="before each step, wait up to this long for other processes to calm down",
    )
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=120.0,
        help="before each step, wait up to this long for the server to go idle "
        "(the last step's calls ended, their recordings finalised)",
    )
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument(
        "--client",
        choices=["raw", "websockets"],
        default="raw",
        help="raw: the bench's lean protocol client; websockets: the library's client "
        "(a cross-check; it saturates its core far sooner)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=-10,
        help="niceness of the generator and servers without SCHED_RR "
        "(negative values need root; skipped otherwise)",
    )
    parser.add_argument("--calls-per-session", type=int, default=50)
    parser.add_argument(
        "--no-readme", action="store_true", help="don't write bench/README.md"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the servers (cProfile, main thread) over each step's measured "
        "window and print the largest passing step's profile (costs capacity: use it "
        "to attribute time, not for the numbers)",
    )
    parser.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the generator and servers SCHED_RR (needs root; else falls back to "
        "--nice), so other work on the machine does not show up as latency; "
        "--no-realtime for the normal scheduler",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the servers' logs"
    )
    parser.add_argument(
        "--bare-uvloop",
        action="store_true",
        help="run the bare reference on uvloop (as Switchboard's uvicorn runs) instead "
        "of asyncio's own loop",
    )
    parser.add_argument(
        "--recording",
        choices=["on", "off", "both"],
        default="on",
        help="record the calls (on: the product's default), not (off: the media path "
        "without the recorders), or measure each server both ways",
    )
    parser.add_argument(
        "--no-record",
        dest="recording",
        action="store_const",
        const="off",
        help="the same as --recording off",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/switchboard_bench"
        ),
        help="the production server's scratch PostgreSQL database (dropped, created)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        help="the production server's Redis database (flushed)",
    )
    args = parser.parse_args(argv)
    args.record = args.recording != "off"
    return args


async def amain(args: argparse.Namespace) -> int:
    kinds = {
        "bare": [],
        "both": ["daphne", "uvicorn"],
        "all": ["uvicorn", "production", "daphne"],
    }.get(args.server, [args.server])
    records = {"on": [True], "off": [False], "both": [True, False]}[args.recording]
    variants = [(kind, record) for kind in kinds for record in records]
    bare_steps = args.steps or args.bare_steps
    sb_steps = args.steps or args.switchboard_steps
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    started = dt.datetime.now(dt.UTC)
    all_results: dict[str, list[lg.StepResult]] = {}
    try:
        for kind, record in [("bare", True), *variants]:
            if kind == "bare":
                server = start_bare(
                    args.server_core, workdir, args.profile, args.bare_uvloop
                )
            else:
                # Synchronous on purpose: nothing else runs yet, and an interrupt
                # cannot leave a server starting in a thread behind.
                try:
                    server = start_switchboard(
                        kind,
                        args.server_core,
                        workdir,
                        record=record,
                        profile=args.profile,
                        database_url=args.database_url,
                        redis_url=args.redis_url,
                    )
                except RuntimeError as exc:
                    print(f"\n== {kind} ==\ncould not start Switchboard: {exc}")
                    all_results[kind if record else f"{kind} (not recorded)"] = []
                    continue
            try:
                all_results[server.name] = await run_server(
                    server, bare_steps if kind == "bare" else sb_steps, args
                )
            finally:
                server.stop()
            print_profile(server, all_results.get(server.name, []))
    finally:
        if args.keep_logs or args.profile:
            print(f"\nServer logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    line = summary(all_results)
    print(f"\n{line}\n\n{side_by_side(all_results)}")
    if not all(all_results.values()):
        print("(bench/README.md left alone: a server was not measured)")
    elif not args.no_readme:
        blocks = [
            f"Run {started:%Y-%m-%d %H:%M} UTC on {machine()}; server pinned to core "
            f"{args.server_core}, load generator to core {args.client_core}; "
            f"{args.warmup:g} s warm-up + {args.seconds:g} s measured per step, "
            f"`--client {args.client}`, "
            + {
                "on": "calls recorded (the default), ",
                "off": "`--recording off`, ",
                "both": "each server with its calls recorded and not, ",
            }[args.recording]
            + ("SCHED_RR (`--realtime`)." if args.realtime else f"nice {args.nice}."),
        ]
        for kind, results in all_results.items():
            title = (
                "bare `websockets` echo (reference"
                + (", on uvloop)" if args.bare_uvloop else ")")
                if kind == "bare"
                else (f"Switchboard on {kind}")
            )
            rows = "\n".join(fmt_row(r) for r in results)
            blocks.append(f"**{title}**\n\n{TABLE_HEAD}\n{rows}")
        blocks.append(f"**{line}**")
        blocks.append(side_by_side(all_results))
        write_readme("\n\n".join(blocks))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cores = os.sched_getaffinity(0)
    if {
        args.server_core,
        args.client_core,
    } - cores or args.server_core == args.client_core:
        print(f"need two distinct cores from {sorted(cores)}", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {args.client_core})
    if args.realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))  # inherited
        except OSError as exc:
            print(f"(could not switch to SCHED_RR: {exc}; using nice {args.nice})")
            args.realtime = False
    if not args.realtime and args.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # the servers inherit it
        except OSError as exc:
            print(f"(could not set niceness {args.nice}: {exc}; running at default)")
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
