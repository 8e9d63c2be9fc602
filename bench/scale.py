"""Scale-out benchmark: calls per media process with 1, 2 (and 4) processes side by side.

The production shape: N uvicorn media processes (as ``make run`` serves: uvloop, httptools,
``MediaWebSocketProtocol``, no permessage-deflate) sharing a scratch PostgreSQL database
and a Redis database of their own, each pinned to its own core, each with its own
``SWITCHBOARD_PROCESS_URL``. The load generator of ``bench/media_socket.py`` runs on the
remaining cores (on a machine without a spare core it shares them: the output says so).

Each step places K calls to the simulator's echo peer through every process's REST API
(a call is hosted by the process that placed it), opens each call's media socket at the
snapshot's ``mediaUrl`` (its host: no call is bridged, and each step checks that on every
process's ``/metrics``), streams real-time 20 ms frames on every socket and measures each
process's calls with ``bench/media_socket.py``'s criteria: p99 round trip < 40 ms, no
frame lost, every socket up. K grows until a process fails; the largest passing K is the
calls per process. The summary gives it for each N and the ratio of N processes' total to
one process's (the goal: >= 1.8x for 2 processes).

    .venv/bin/python bench/scale.py                       # 1 and 2 processes (4 with >= 5 cores)
    .venv/bin/python bench/scale.py --processes 2 --steps 100 150 200 --seconds 5

Needs PostgreSQL (``--database-url``; the database is dropped and created) and Redis
(``--redis-url``; its database is flushed). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import shutil
import signal
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
import media_socket as ms

ROOT = ms.ROOT
README = ms.README
STEPS = [25, 50, 75, 100, 150, 200, 250, 300, 350, 400, 450, 500]
RESULTS_START = "<!-- scale results: start -->"
RESULTS_END = "<!-- scale results: end -->"
GOAL_RATIO_2 = 1.8
STALL_CPU = 0.5  # a process failing below this share of its core is rerun once


@dataclass
class Fleet:
    """The media processes of one configuration, and the cores everything runs on."""

    servers: list[ms.Server]
    cores: list[int]  # the core of each server
    generator_cores: set[int]
    shared: bool  # the generator shares cores with the servers


@dataclass
class Step:
    k: int  # calls per process
    kinds: list[str]  # the processes, in the order of ``results``
    results: list[lg.StepResult] = field(default_factory=list)  # one per process
    misrouted: int = 0  # calls whose mediaUrl named another process than their host
    bridged: list[float] = field(default_factory=list)  # per process, after streaming
    setup_error: str = ""
    rivals: list[str] = field(default_factory=list)  # other real-time processes

    @property
    def passed(self) -> bool:
        return (
            not self.setup_error
            and not self.misrouted
            and not any(self.bridged)
            and len(self.results) > 0
            and all(r.passed for r in self.results)
        )


def base_env(workdir: Path, args: argparse.Namespace) -> dict[str, str]:
    var_dir = workdir / "var"
    var_dir.mkdir(exist_ok=True)
    env = ms.switchboard_env(var_dir)
    env.update(DATABASE_URL=args.database_url, REDIS_URL=args.redis_url)
    return env


def prepare(workdir: Path, args: argparse.Namespace) -> str:
    """Migrate the scratch database and return a test API key."""
    ms.reset_database(args.database_url)
    ms.flush_redis(args.redis_url)
    env = base_env(workdir, args)
    manage = [sys.executable, str(ROOT / "manage.py")]
    for step in (["migrate", "--noinput"], ["bootstrap_demo", "--json"]):
        done = subprocess.run(
            [*manage, *step], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(
                f"manage.py {step[0]} failed ({done.returncode}):\n"
                f"{(done.stderr or done.stdout)[-2000:]}"
            )
    match = re.search(r"\{.*\}", done.stdout, re.S)
    if not match:
        raise RuntimeError(f"bootstrap_demo printed no JSON: {done.stdout!r}")
    return str(json.loads(match.group(0))["testKey"])


def start_fleet(n: int, workdir: Path, api_key: str, args: argparse.Namespace) -> Fleet:
    """N media processes, each pinned to its own core (the generator's are the rest)."""
    cores = sorted(os.sched_getaffinity(0))
    server_cores = cores[:n]
    rest = set(cores[n:])
    fleet = Fleet([], server_cores, rest or set(cores), shared=not rest)
    mine = os.sched_getaffinity(0)
    try:
        for index, core in enumerate(server_cores):
            port = ms.free_port()
            env = base_env(workdir, args)
            env["SWITCHBOARD_PROCESS_URL"] = f"ws://{ms.HOST}:{port}"
            log = workdir / f"media-{n}-{index}.log"
            cmd = [
                str(ms.BIN / "uvicorn"),
                "--host",
                ms.HOST,
                "--port",
                str(port),
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
                "--no-access-log",
                "config.asgi:application",
            ]
            # The child inherits this process's affinity at fork: one core of its own.
            os.sched_setaffinity(0, {core})
            try:
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                    )
            finally:
                os.sched_setaffinity(0, mine)
            server = ms.Server(
                f"media-{index + 1}",
                port,
                proc,
                log,
                echo_delay_s=ms.ECHO_DELAY_S,
                expect_ready=True,
                api_key=api_key,
            )
            fleet.servers.append(server)
            try:
                ms.wait_for_port(port, proc, 60)
            except RuntimeError:
                raise RuntimeError(
                    f"{server.kind} did not start:\n{server.log_tail()}"
                ) from None
    except BaseException:
        stop_fleet(fleet)
        raise
    os.sched_setaffinity(0, fleet.generator_cores)
    return fleet


def stop_fleet(fleet: Fleet) -> None:
    for server in fleet.servers:
        server.stop()


def other_realtime(fleet: Fleet) -> list[str]:
    """User processes besides this bench running a real-time policy (another bench):
    SCHED_RR does not keep those behind this one."""
    ours = {os.getpid(), *(server.proc.pid for server in fleet.servers)}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            if not (entry / "cmdline").read_bytes():
                continue  # a kernel thread
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)
        policy = int(rest[1].split()[38])  # field 41 of proc(5)
        if policy in (os.SCHED_FIFO, os.SCHED_RR):
            found.append(f"{entry.name} ({comm})")
    return found


async def wait_for_rivals(fleet: Fleet, args: argparse.Namespace) -> None:
    """Wait (up to ``--rival-wait``) until no other real-time process has run for
    ``--rival-quiet`` seconds: two benches on one machine measure each other."""
    deadline = time.monotonic() + args.rival_wait
    quiet_since = time.monotonic()
    told = False
    while time.monotonic() < deadline:
        rivals = other_realtime(fleet)
        if rivals:
            quiet_since = time.monotonic()
            if not told:
                print(
                    f"    (waiting for other real-time processes: {', '.join(rivals)})"
                )
                told = True
        elif time.monotonic() - quiet_since >= args.rival_quiet:
            return
        await asyncio.sleep(1.0)


def bridged_sockets(server: ms.Server) -> float:
    """The process's ``switchboard_media_bridged_sockets`` gauge (config/health.py)."""
    import httpx

    text = httpx.get(
        f"http://{ms.HOST}:{server.port}/metrics", timeout=10, trust_env=False
    ).text
    for line in text.splitlines():
        if line.startswith("switchboard_media_bridged_sockets "):
            return float(line.split()[1])
    return float("nan")


# -- a step -------------------------------------------------------------------------
async def place_on(
    server: ms.Server, k: int, args: argparse.Namespace
) -> tuple[ms.Api, list[tuple[str, str]], list[str]]:
    """K calls placed through ``server``, and each call's ``mediaUrl``."""
    api = ms.Api(server, args.record)
    calls = await api.place_calls(k, args.calls_per_session)
    gate = asyncio.Semaphore(8)

    async def media_url(sid: str, cid: str) -> str:
        async with gate:
            got = await api.request("GET", f"/sessions/{sid}/calls/{cid}")
        return str(got["data"]["mediaUrl"])

    urls = await asyncio.gather(*(media_url(s, c) for s, c in calls))
    return api, calls, list(urls)


async def run_step(fleet: Fleet, k: int, args: argparse.Namespace) -> Step:
    step = Step(k, [server.kind for server in fleet.servers])
    step.rivals = other_realtime(fleet)
    n_frames = round((args.warmup + args.seconds) / lg.FRAME_S)
    apis: list[ms.Api] = []
    placed: list[list[tuple[str, str]]] = []
    clients: dict[int, list[lg.Client]] = {}
    try:
        try:
            outcome = await asyncio.gather(
                *(place_on(server, k, args) for server in fleet.servers)
            )
        except Exception as exc:
            step.setup_error = f"calls: {exc}"
            return step
        paths: dict[int, list[str]] = {server.port: [] for server in fleet.servers}
        for server, (api, calls, urls) in zip(fleet.servers, outcome, strict=True):
            apis.append(api)
            placed.append(calls)
            for url in urls:
                # Each socket goes where the snapshot says its call lives.
                parts = urlsplit(url)
                if parts.port != server.port:
                    step.misrouted += 1
                if parts.port not in paths:
                    step.setup_error = f"mediaUrl {url} names no process of this run"
                    return step
                paths[parts.port].append(parts.path)
        headers = {"Authorization": f"Bearer {fleet.servers[0].api_key}"}
        opened = await asyncio.gather(
            *(
                lg.open_clients(
                    ms.HOST, port, group, headers, n_frames, True, kind=args.client
                )
                for port, group in paths.items()
            )
        )
        errors: list[str] = []
        for port, (group_clients, group_errors) in zip(paths, opened, strict=True):
            clients[port] = group_clients
            errors += group_errors
        if errors:
            step.setup_error = (
                f"{len(errors)} sockets failed: {Counter(errors).most_common(3)}"
            )
            return step
        # Every process's calls stream at once; each is measured on its own.
        results = await asyncio.gather(
            *(
                lg.stream(
                    clients[server.port],
                    args.warmup,
                    args.seconds,
                    server.echo_delay_s,
                    server.proc.pid,
                )
                for server in fleet.servers
            )
        )
        total_server_cpu = sum(r.server_cpu for r in results)
        for result in results:
            result.n = k
            # `other` counted the sibling processes too: they are part of the bench.
            result.other_cpu = max(
                0.0, result.other_cpu - (total_server_cpu - result.server_cpu)
            )
        step.results = list(results)
        step.rivals += [r for r in other_realtime(fleet) if r not in step.rivals]
        step.bridged = [
            await asyncio.to_thread(bridged_sockets, server) for server in fleet.servers
        ]
        return step
    finally:
        await lg.close_clients([c for group in clients.values() for c in group])
        for api, calls in zip(apis, placed, strict=False):
            errors = await api.end_calls(calls)
            if errors:
                print(f"    ending calls: {len(errors)} errors, e.g. {errors[0]}")
        for api in apis:
            await api.aclose()


def step_rows(step: Step) -> list[str]:
    """One row per process: media_socket.py's columns, with the process named."""
    if not step.results:
        return [f"| {step.k:>4} | all | setup failed: {step.setup_error} |"]
    rows = []
    for kind, result in zip(step.kinds, step.results, strict=True):
        cells = ms.fmt_row(result).split("|", 2)
        rows.append(f"| {step.k:>4} | {kind} |{cells[2]}")
    return rows


def disturbed(step: Step, realtime: bool) -> bool:
    """Did something other than the load plausibly fail this step? Every failing process
    either was disturbed by media_socket.py's rule or failed with half its core idle (a
    stall, not its capacity: a process at its limit fails with its core full)."""
    failed = [r for r in step.results if not r.passed]
    if failed and step.rivals:
        return True
    return bool(failed) and all(
        ms.disturbed(r, realtime) or r.server_cpu < STALL_CPU for r in failed
    )


async def run_fleet(
    fleet: Fleet, steps: Sequence[int], args: argparse.Namespace
) -> list[Step]:
    n = len(fleet.servers)
    where = ", ".join(
        f"{s.kind} (pid {s.proc.pid}, port {s.port}) on core {core}"
        for s, core in zip(fleet.servers, fleet.cores, strict=True)
    )
    gen = ",".join(map(str, sorted(fleet.generator_cores)))
    print(f"\n== {n} media process{'es' if n > 1 else ''}: {where} ==")
    print(
        f"load generator on core(s) {gen}"
        + (" - SHARED with the media processes (no spare core)" if fleet.shared else "")
    )
    print(HEAD)
    done: list[Step] = []
    for k in steps:
        retries = args.disturbed_retries
        while True:
            await wait_for_rivals(fleet, args)
            step = await run_step(fleet, k, args)
            if step.passed or not retries or not disturbed(step, args.realtime):
                break
            retries -= 1
            for row in step_rows(step):
                print(row.replace("| FAIL |", "| FAIL, disturbed: retrying |"))
        done.append(step)
        for row in step_rows(step):
            print(row, flush=True)
        for server, result in zip(fleet.servers, step.results, strict=False):
            for note in ms.notes_for(result, args.realtime):
                print(f"    {server.kind}: {note}")
        if step.rivals:
            print(
                "    WARNING: other real-time processes ran meanwhile (another bench?): "
                + ", ".join(step.rivals[:5])
            )
        if step.misrouted:
            print(f"    {step.misrouted} calls' mediaUrl named another process")
        if any(step.bridged):
            print(f"    bridged sockets per process after streaming: {step.bridged}")
        dead = [s for s in fleet.servers if not s.alive()]
        for server in dead:
            print(f"    {server.kind} exited ({server.proc.returncode}):")
            print(server.log_tail())
        if dead or not step.passed:
            break
    return done


HEAD = (
    "|    N | process | p50 ms | p99 ms |  max ms |   lost |   late | server CPU "
    "| gen CPU | other CPU | lag99 | verdict |\n"
    "|-----:|---------|-------:|-------:|--------:|-------:|-------:|-----------:"
    "|--------:|--------:|------:|---------|"
)


def largest_pass(steps: Sequence[Step]) -> tuple[int, bool]:
    """The largest passing calls per process, and whether that is only a lower bound."""
    best = max((s.k for s in steps if s.passed), default=0)
    return best, bool(steps) and all(s.passed for s in steps)


def summary(per_n: dict[int, list[Step]]) -> str:
    parts = []
    one, one_open = largest_pass(per_n.get(1, []))
    for n, steps in per_n.items():
        best, open_ended = largest_pass(steps)
        text = (
            f"{n} process{'es' if n > 1 else ''}: {'>= ' if open_ended else ''}{best}"
        )
        if n > 1 and one:
            ratio = n * best / one
            text += f" each, {n * best} in all = {ratio:.2f}x one process"
            if n == 2:
                # "meets" holds unless one process could carry more; "below" unless
                # two could.
                settled = not one_open if ratio >= GOAL_RATIO_2 else not open_ended
                verdict = ("meets" if ratio >= GOAL_RATIO_2 else "below") + (
                    f" the {GOAL_RATIO_2}x goal"
                )
                if not settled:
                    verdict = "undecided: add steps past the ones that all passed"
                text += f" ({verdict})"
        parts.append(text)
    return "Calls per process (p99 < 40 ms, no loss): " + "; ".join(parts)


def write_readme(text: str) -> None:
    page = README.read_text()
    if RESULTS_START not in page or RESULTS_END not in page:
        print(f"(no scale markers in {README}; results not written)")
        return
    head, rest = page.split(RESULTS_START, 1)
    tail = rest.split(RESULTS_END, 1)[1]
    README.write_text(f"{head}{RESULTS_START}\n{text.rstrip()}\n{RESULTS_END}{tail}")
    print(f"\nResults written to {README.relative_to(ROOT)}")


# -- main ---------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    cores = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1, 2, 4] if cores >= 5 else [1, 2],
        help="media process counts to measure (the first should be 1: the ratio's base)",
    )
    parser.add_argument(
        "--steps", type=int, nargs="+", default=STEPS, help="calls per process"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--disturbed-retries", type=int, default=1)
    parser.add_argument("--calls-per-session", type=int, default=50)
    parser.add_argument("--client", choices=["raw", "websockets"], default="raw")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "SCALE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/switchboard_scale"
        ),
        help="a scratch PostgreSQL database: DROPPED and created again",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("SCALE_REDIS_URL", "redis://127.0.0.1:6379/12"),
        help="a Redis database of the bench's own: FLUSHED",
    )
    parser.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record the calls (the product's default)",
    )
    parser.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="SCHED_RR for the generator and the servers (as root), as media_socket.py",
    )
    parser.add_argument("--nice", type=int, default=-10)
    parser.add_argument(
        "--rival-wait",
        type=float,
        default=900.0,
        help="before each step, wait up to this long for other real-time processes "
        "(another bench) to finish",
    )
    parser.add_argument(
        "--rival-quiet",
        type=float,
        default=15.0,
        help="...until none has run for this long",
    )
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-scale-"))
    started = dt.datetime.now(dt.UTC)
    per_n: dict[int, list[Step]] = {}
    shared: dict[int, bool] = {}
    try:
        api_key = await asyncio.to_thread(prepare, workdir, args)
        for n in args.processes:
            fleet = start_fleet(n, workdir, api_key, args)
            shared[n] = fleet.shared
            try:
                per_n[n] = await run_fleet(fleet, args.steps, args)
            finally:
                stop_fleet(fleet)
                os.sched_setaffinity(0, set(fleet.cores) | fleet.generator_cores)
            await asyncio.to_thread(ms.flush_redis, args.redis_url)
    finally:
        if args.keep_logs:
            print(f"\nServer logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    line = summary(per_n)
    print(f"\n{line}")
    if not args.no_readme and per_n:
        conditions = (
            f"Run {started:%Y-%m-%d %H:%M} UTC on {ms.machine()}; PostgreSQL and Redis "
            f"on the same machine; each media process pinned to a core of its own, the "
            f"load generator on the rest"
            + "".join(
                f"; with {n} processes the generator SHARED their cores"
                for n, is_shared in shared.items()
                if is_shared
            )
            + f"; {args.warmup:g} s warm-up + {args.seconds:g} s measured per step, "
            + ("calls recorded, " if args.record else "`--no-record`, ")
            + ("SCHED_RR." if args.realtime else f"nice {args.nice}.")
        )
        rivalled = sum(1 for steps in per_n.values() for step in steps if step.rivals)
        if rivalled:
            conditions += (
                f" WARNING: other real-time processes (another bench) ran during "
                f"{rivalled} of the steps: those numbers are disturbed."
            )
        blocks = [conditions]
        for n, steps in per_n.items():
            rows = "\n".join(row for step in steps for row in step_rows(step))
            blocks.append(
                f"**{n} media process{'es' if n > 1 else ''}**\n\n{HEAD}\n{rows}"
            )
        blocks.append(f"**{line}**")
        write_readme("\n\n".join(blocks))
    return 0


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the servers are stopped on the way out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    if args.realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))  # inherited
        except OSError as exc:
            print(f"(could not switch to SCHED_RR: {exc}; using nice {args.nice})")
            args.realtime = False
    if not args.realtime and args.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        except OSError as exc:
            print(f"(could not set niceness {args.nice}: {exc}; running at default)")
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
