"""WhatsApp benchmark: N concurrent WebRTC calls against local aiortc users.

The Switchboard side runs in this process, pinned to one core: the call engine, the
media clock, the WebRTC legs (aiortc on ``WHATSAPP_RTC_THREADS`` loops of their own:
ICE, DTLS-SRTP, Opus) and the recorders (every call is recorded), behind the real ASGI
server that receives Meta's webhooks. The far end is the tests' fake Graph API with its
aiortc users (``tests/carriers/whatsapp_peer.py``) in a child process pinned to the
other core: each call is business-initiated to an echoing user, and the runtime feeds
every call a steady tone.

For each step it prints: this process's CPU, CPU per call, the media clock's step
lateness p50/p99, the frames the legs had no audio for after the warm-up (``gaps``),
received frames dropped for backlog, and the peer process's CPU (a step where the peers'
core is saturated measures the peers, not Switchboard). A step passes when p99 lateness
< 40 ms and no audio was missing or dropped; the verdict names the largest passing N.

    .venv/bin/python bench/whatsapp.py                       # default steps
    .venv/bin/python bench/whatsapp.py --steps 10 20 40 --seconds 10 --rtc-threads 2

Everything stays on 127.0.0.1. The table is printed, not written anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = [10, 20, 30, 40]
ECHO_USER = "+15550000001"


def _pin(pid: int, core: int | None) -> None:
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, {core})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _thread_cpu() -> dict[int, tuple[str, int]]:
    """CPU ticks used so far by each thread of this process, with its name."""
    import threading

    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    found = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = names.get(int(task.name)) or (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(task.name)] = (name, int(fields[11]) + int(fields[12]))
    return found


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# ---------------------------------------------------------------- the peers' process


def serve_fake() -> None:
    """Child process: the fake Graph API and its users; commands as JSON lines."""
    from tests.carriers.whatsapp_peer import FakeGraph

    with FakeGraph() as fake:
        print(json.dumps({"base_url": fake.base_url}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            if "add_number" in command:
                args = command["add_number"]
                fake.add_number(args.pop("phone_number_id"), **args)
                print(json.dumps({"ok": True}), flush=True)


class Peers:
    def __init__(self, core: int | None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-fake"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "LOG_LEVEL": "WARNING"},
        )
        _pin(self.process.pid, core)
        self.base_url = self._read()["base_url"]

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("the fake Graph API process did not start")
        return dict(json.loads(line))

    def add_number(self, **args: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"add_number": args}) + "\n")
        self.process.stdin.flush()
        self._read()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


# ---------------------------------------------------------------- Switchboard's side


def _setup(var_dir: str, port: int, rtc_threads: int) -> None:
    os.environ["SWITCHBOARD_VAR_DIR"] = var_dir
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["SWITCHBOARD_CARRIERS"] = "simulator,whatsapp"
    os.environ["SWITCHBOARD_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    os.environ["WHATSAPP_ICE_ADDRESSES"] = "127.0.0.1"
    os.environ["WHATSAPP_ICE_SERVERS"] = ""
    os.environ["WHATSAPP_RTC_THREADS"] = str(rtc_threads)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["MEDIA_MAX_CALLS"] = "0"  # the bench finds the capacity
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _serve(port: int) -> None:
    import uvicorn

    from config import home
    from config.asgi import application

    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            ws="config.media_server:MediaWebSocketProtocol",
            log_level="warning",
        )
    )
    home.submit(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the ASGI server did not start")
        time.sleep(0.05)


def _line(peers: Peers) -> Any:
    from accounts import selectors
    from accounts import services as accounts
    from calls import services

    account = accounts.account_create(name="WhatsApp bench")
    environment = selectors.environment_of(account, "live")
    number = {
        "phone_number_id": str(secrets.randbelow(10**14) + 10**14),
        "access_token": "EAAG" + secrets.token_urlsafe(32),
        "app_secret": secrets.token_hex(16),
    }
    session = services.session_create(
        environment=environment,
        display_name="bench",
        carrier="whatsapp",
        carrier_settings={**number, "graph_api_base": peers.base_url},
    )
    peers.add_number(
        phone_number_id=number["phone_number_id"],
        access_token=number["access_token"],
        app_secret=number["app_secret"],
        display_phone_number="15550100001",
        webhook_url=(
            f"{os.environ['SWITCHBOARD_PUBLIC_URL']}/carriers/whatsapp/"
            f"{session.public_id}/webhook"
        ),
    )
    from calls.runtime import control

    control.engine()  # this process's engine holds the line
    services.session_connect(session=session)
    deadline = time.monotonic() + 20
    while not type(session).objects.get(pk=session.pk).connected:
        if time.monotonic() > deadline:
            raise SystemExit("the WhatsApp line did not come up")
        time.sleep(0.2)
    return session


class Tone:
    """An outbound source: a steady 440 Hz tone, 20 ms at a time."""

    def __init__(self) -> None:
        t = np.arange(16000, dtype=np.float64) / 16000
        self.period = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        self.position = 0

    def read_into(self, out: np.ndarray) -> int:
        start = self.position
        out[:] = self.period[start : start + len(out)]
        self.position = (start + len(out)) % 16000
        return len(out)


def run_step(calls: int, seconds: float, session: Any, peers: Peers) -> dict[str, Any]:
    from calls.carriers.whatsapp.leg import WhatsAppLeg
    from calls.runtime import control
    from calls.runtime.clock import LATENESS_WINDOW, PHASES
    from config import home

    engine = control.engine()
    placed = [
        control.call_place(session=session, to=ECHO_USER, record=True).call
        for _ in range(calls)
    ]

    async def legs() -> list[WhatsAppLeg]:
        found = []
        for call in placed:
            runtime = engine.runtimes.get(str(call.public_id))
            leg = runtime.leg if runtime is not None else None
            if isinstance(leg, WhatsAppLeg):
                found.append(leg)
        return found

    deadline = time.monotonic() + 30 + calls * 0.5
    while True:
        up = [leg for leg in home.run_sync(legs()) if leg.media_up]
        if len(up) == calls:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(up)} of {calls} calls connected their media")
        time.sleep(0.2)

    async def attach() -> None:
        for call in placed:
            runtime = engine.runtimes[str(call.public_id)]
            runtime.attach_client("bench", Tone(), source=True)

    home.run_sync(attach())
    time.sleep(3.0)  # warm-up: media flowing both ways, buffers settled

    async def counters() -> tuple[int, int, int]:
        found = await legs()
        gaps = sum(leg.underruns for leg in found)
        dropped = sum(leg.peer.dropped_frames for leg in found)
        return gaps, dropped, engine.clock.ticks

    gaps0, dropped0, ticks0 = home.run_sync(counters())
    threads0 = _thread_cpu()
    peer0 = _cpu_ticks(peers.process.pid)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    peer_cpu = (_cpu_ticks(peers.process.pid) - peer0) / os.sysconf("SC_CLK_TCK")
    threads1 = _thread_cpu()
    by_name: dict[str, float] = {}
    for tid, (name, used) in threads1.items():
        before = threads0.get(tid, (name, 0))[1]
        by_name[name] = by_name.get(name, 0.0) + (used - before)
    hz = os.sysconf("SC_CLK_TCK")
    split = {name: 100 * used / hz / wall for name, used in by_name.items()}
    gaps1, dropped1, ticks1 = home.run_sync(counters())
    ticks = ticks1 - ticks0
    lateness = engine.clock.lateness_ms()[-min(ticks * PHASES, LATENESS_WINDOW) :]
    for call in placed:
        control.call_end(call)
    time.sleep(1.0)
    return {
        "calls": calls,
        "cpu_pct": 100 * cpu / wall,
        "cpu_per_call": 100 * cpu / wall / calls,
        "late_p50": float(np.percentile(lateness, 50)),
        "late_p99": float(np.percentile(lateness, 99)),
        "gaps": gaps1 - gaps0,
        "dropped": dropped1 - dropped0,
        "peer_pct": 100 * peer_cpu / wall,
        "split": split,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=STEPS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rtc-threads", type=int, default=1)
    parser.add_argument(
        "--threads", action="store_true", help="also print CPU by thread name"
    )
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake()
        return
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    own, others = (cores[0], cores[-1]) if len(cores) > 1 else (None, None)
    _pin(0, own)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="sb-wa-bench-") as var_dir:
        _setup(var_dir, port, args.rtc_threads)
        _serve(port)
        peers = Peers(others)
        try:
            session = _line(peers)
            print(
                f"WhatsApp (WebRTC, Opus) echo calls, {args.seconds:.0f} s per step, "
                f"recording on, {args.rtc_threads} RTC thread(s); Switchboard on core "
                f"{own}, aiortc users on core {others}"
            )
            print(
                f"{'calls':>6} {'cpu %':>6} {'cpu %/call':>10} {'late p50':>9} "
                f"{'late p99':>9} {'gaps':>6} {'dropped':>8} {'peers cpu %':>11}"
            )
            best = 0
            for calls in args.steps:
                result = run_step(calls, args.seconds, session, peers)
                ok = (
                    result["late_p99"] < 40
                    and result["gaps"] == 0
                    and result["dropped"] == 0
                )
                if ok:
                    best = calls
                note = "ok" if ok else "FAIL"
                if result["peer_pct"] > 90:
                    note += " (peers' core saturated)"
                print(
                    f"{result['calls']:>6} {result['cpu_pct']:>6.1f} "
                    f"{result['cpu_per_call']:>10.2f} {result['late_p50']:>9.2f} "
                    f"{result['late_p99']:>9.2f} {result['gaps']:>6} "
                    f"{result['dropped']:>8} {result['peer_pct']:>11.1f}  {note}"
                )
                if args.threads:
                    top = sorted(result["split"].items(), key=lambda kv: -kv[1])[:6]
                    print(
                        "        cpu % by thread: "
                        + ", ".join(f"{name} {pct:.1f}" for name, pct in top)
                    )
            print(
                f"\nlargest passing step: {best} WhatsApp calls on one core "
                f"({100 / max(best, 1):.1f} % of a core per call at most)"
            )
        finally:
            from calls.runtime.engine import current_engine
            from config import home

            engine = current_engine()
            if engine is not None:
                home.run_sync(engine.stop())
            peers.close()


if __name__ == "__main__":
    main()
