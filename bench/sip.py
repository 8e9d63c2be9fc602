"""SIP benchmark: N concurrent echo calls over SIP/RTP against Debian baresip peers.

The Switchboard side runs in this process, pinned to one core: the call engine, the
media clock, the SIP stack (baresip-python) and the recorders (every call is recorded,
as by default), with ``MEDIA_REALTIME_PRIORITY=10`` as the README recommends for
production (``--realtime 0``: the normal scheduler). The far ends are Debian
``baresip`` echo peers (``make peers``), pinned to the other core, each taking up to
``PER_PEER`` calls. Each call is an IP-trunk call
to an echo peer that sends its audio back; the runtime feeds every call a steady tone.

For each step it prints: process CPU (Switchboard's threads and the SIP stack's), CPU
per call, the media clock's step lateness p50/p99, and the echo's health: frames the
SIP leg had no audio for after the warm-up (``gaps``) and received audio dropped for
backlog; and the latency the leg adds at the step's end: sent audio queued in the stack
(median and worst call; the media clock catching up after a stall leaves a backlog that
the leg drains in pauses), the received slack the leg settled on (mean), received
audio queued in the leg (median and worst call) and silence it dropped from a standing
backlog during the step (``trim``); and, from the stack's final report of each call
(warm-up included), frames its jitter buffer played late and sequence gaps it saw. A step
passes when p99 lateness < 40 ms and no audio was missing or dropped. The verdict line
names the largest passing N for each codec (target: 100 PCMU calls per core).

    .venv/bin/python bench/sip.py                          # PCMU and Opus, default steps
    .venv/bin/python bench/sip.py --codec pcmu --steps 50 100 150 --seconds 10

All traffic stays on 127.0.0.1. The table is printed, not written anywhere.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, suppress
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_PEER = 50
STEPS = [25, 50, 100, 150, 200]


def _pin(pid: int, core: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, {core})


def _may_run_realtime(priority: int) -> bool:
    """Whether this process may run a thread SCHED_RR at ``priority`` (tried on a
    thread of its own, which then ends)."""
    allowed: list[bool] = []

    def attempt() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
            allowed.append(True)
        except (AttributeError, OSError):
            allowed.append(False)

    probe = threading.Thread(target=attempt)
    probe.start()
    probe.join()
    return allowed[0]


def _setup(var_dir: str, realtime: int) -> None:
    os.environ["SWITCHBOARD_VAR_DIR"] = var_dir
    os.environ["MEDIA_REALTIME_PRIORITY"] = str(realtime)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ["SWITCHBOARD_CARRIERS"] = "simulator,sip"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["MEDIA_MAX_CALLS"] = "0"  # the bench finds the capacity
    # Chosen before settings load (the peers' port picker reads them).
    from config.ports import free_sip_port

    os.environ["SIP_BIND"] = f"127.0.0.1:{free_sip_port()}"
    os.environ["SIP_RTP_PORTS"] = "10000-14999"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _account() -> object:
    from accounts import selectors, services

    account = services.account_create(name="SIP bench")
    return selectors.environment_of(account, "live")


def _session(environment: object, server: str, codec: str) -> object:
    from calls import services

    return services.session_create(
        environment=environment,  # type: ignore[arg-type]
        display_name="bench",
        carrier="sip",
        carrier_settings={
            "server": server,
            "username": f"bench{codec}",
            "register": False,
            "codecs": [codec],
        },
    )


class Tone:
    """An outbound source: a 440 Hz tone 0.8 s on, 0.4 s off, 20 ms at a time (pauses
    as in speech, where the SIP leg can drain a send backlog)."""

    def __init__(self) -> None:
        t = np.arange(16000, dtype=np.float64) / 16000
        self.period = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        self.period[int(0.8 * 16000) :] = 0.0
        self.position = 0

    def read_into(self, out: np.ndarray) -> int:
        start = self.position
        out[:] = self.period[start : start + len(out)]
        self.position = (start + len(out)) % 16000
        return len(out)


def _thread_cpu() -> dict[int, tuple[str, int]]:
    """CPU ticks used so far by each thread of this process, with its name."""
    found = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(task.name)] = (name, int(fields[11]) + int(fields[12]))
    return found


def run_step(
    calls: int, codec: str, seconds: float, environment: object, peers: list[object]
) -> dict[str, float]:
    from calls import services
    from calls.carriers.sip.leg import SipLeg
    from calls.models import Call, CallState
    from calls.runtime import control
    from config import home

    engine = control.engine()
    sessions = [_session(environment, peer.host_port, codec) for peer in peers]  # type: ignore[attr-defined]
    for session in sessions:
        services.session_connect(session=session)  # type: ignore[arg-type]
    deadline = time.monotonic() + 20
    while not all(
        type(s).objects.get(pk=s.pk).connected  # type: ignore[attr-defined]
        for s in sessions
    ):
        if time.monotonic() > deadline:
            raise SystemExit("the SIP lines did not come up")
        time.sleep(0.2)
    placed = []
    for index in range(calls):
        peer = peers[index % len(peers)]
        session = sessions[index % len(sessions)]
        placed.append(
            control.call_place(
                session=session,  # type: ignore[arg-type]
                to=peer.uri,  # type: ignore[attr-defined]
                record=True,
            ).call
        )
    deadline = time.monotonic() + 30
    while (
        Call.objects.filter(
            pk__in=[c.pk for c in placed], state=CallState.ACTIVE
        ).count()
        < calls
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"only some of {calls} calls were answered")
        time.sleep(0.2)

    async def attach() -> None:
        for call in placed:
            runtime = engine.runtimes[str(call.public_id)]
            runtime.attach_client("bench", Tone(), source=True)

    home.run_sync(attach())
    time.sleep(3.0)  # warm-up: media up, buffers settled

    async def delays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per call: sent audio queued in the stack, received slack, received audio
        queued in the leg (ms)."""
        sent, slack, received = [], [], []
        for call in placed:
            leg = engine.runtimes[str(call.public_id)].leg
            assert isinstance(leg, SipLeg)
            with suppress(Exception):  # a call whose media is gone is left out
                sent.append(leg.call.audio.info().tx_buffered / 32)
            slack.append(leg.preroll / 16)
            received.append(leg._queued / 16)
        return np.array(sent), np.array(slack), np.array(received)

    async def counters() -> tuple[int, int, int, int]:
        gaps = dropped = trimmed = 0
        for call in placed:
            leg = engine.runtimes[str(call.public_id)].leg
            assert isinstance(leg, SipLeg)
            gaps += leg.underruns
            dropped += leg.dropped_samples
            trimmed += leg.trimmed_samples
        return gaps, dropped, trimmed, engine.clock.ticks

    gaps0, dropped0, trimmed0, ticks0 = home.run_sync(counters())
    threads0 = _thread_cpu()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    threads1 = _thread_cpu()
    by_kind: dict[str, float] = {}
    # Python threads by their Python name (the media loop, the stack's SIP/RTP thread,
    # the recording writer); native ones by theirs (the stack's per-call Audio TX).
    python_names = {thread.native_id: thread.name for thread in threading.enumerate()}
    for tid, (name, ticks_used) in threads1.items():
        name = python_names.get(tid, name)
        before = threads0.get(tid, (name, 0))[1]
        by_kind[name] = by_kind.get(name, 0.0) + (ticks_used - before)
    hz = os.sysconf("SC_CLK_TCK")
    split = {name: 100 * used / hz / wall for name, used in by_kind.items()}
    gaps1, dropped1, trimmed1, ticks1 = home.run_sync(counters())
    sent, slack, received = home.run_sync(delays())
    ticks = ticks1 - ticks0
    from calls.runtime.clock import LATENESS_WINDOW, PHASES

    lateness = engine.clock.lateness_ms()[-min(ticks * PHASES, LATENESS_WINDOW) :]
    legs = [engine.runtimes[str(call.public_id)].leg for call in placed]
    for call in placed:
        control.call_end(call)
    for session in sessions:
        control.session_disconnect(session=session)  # type: ignore[arg-type]
    # The stack's own account of each call (its jitter buffer), and the recordings
    # finalised before the next step starts: in this process, that work would
    # otherwise be measured as the next step's.
    from recordings.models import Recording

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
        any(leg.call.final_stats is None for leg in legs)  # type: ignore[attr-defined]
        or Recording.objects.filter(call__in=placed).count() < 3 * calls
    ):
        time.sleep(0.5)
    finals = [leg.call.final_stats for leg in legs]  # type: ignore[attr-defined]
    jitter_late = sum(f.jbuf_late for f in finals if f is not None)
    jitter_lost = sum(f.jbuf_lost for f in finals if f is not None)
    return {
        "calls": calls,
        "cpu_pct": 100 * cpu / wall,
        "cpu_per_call": 100 * cpu / wall / calls,
        "late_p50": float(np.percentile(lateness, 50)),
        "late_p99": float(np.percentile(lateness, 99)),
        "gaps": gaps1 - gaps0,
        "dropped_ms": (dropped1 - dropped0) / 16,
        "trimmed_ms": (trimmed1 - trimmed0) / 16,
        "split": split,
        "jb_late": jitter_late,
        "jb_lost": jitter_lost,
        "sent_p50": float(np.percentile(sent, 50)) if len(sent) else math.nan,
        "sent_max": float(sent.max()) if len(sent) else math.nan,
        "slack_mean": float(slack.mean()) if len(slack) else math.nan,
        "received_p50": float(np.percentile(received, 50)),
        "received_max": float(received.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", choices=["pcmu", "opus", "both"], default="both")
    parser.add_argument("--steps", type=int, nargs="+", default=STEPS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--threads", action="store_true", help="also print CPU by thread name"
    )
    parser.add_argument(
        "--realtime",
        type=int,
        default=10,
        metavar="PRIORITY",
        help="the media process's MEDIA_REALTIME_PRIORITY (default 10, as the README "
        "recommends for production: the loop SCHED_RR, the stack's receive threads "
        "just below it; 0 for the normal scheduler; needs root or CAP_SYS_NICE)",
    )
    args = parser.parse_args()
    if args.realtime and not _may_run_realtime(args.realtime):
        print(f"(SCHED_RR {args.realtime} is not allowed here: the normal scheduler)")
        args.realtime = 0
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    own, others = (cores[0], cores[-1]) if len(cores) > 1 else (None, None)
    if own is not None:
        _pin(0, own)
    codecs = ["pcmu", "opus"] if args.codec == "both" else [args.codec]
    with tempfile.TemporaryDirectory(prefix="sb-sip-bench-") as var_dir:
        _setup(var_dir, args.realtime)
        from tests.carriers.sip_peers import echo_peer, require_peers

        require_peers()
        environment = _account()
        print(
            f"SIP echo calls, {args.seconds:.0f} s per step, recording on; "
            f"Switchboard on core {own}, baresip peers on core {others}; media loop "
            + (f"SCHED_RR {args.realtime}" if args.realtime else "normal scheduler")
        )
        best: dict[str, int] = {}
        for codec in codecs:
            print(f"\n{codec.upper()}")
            print(
                f"{'calls':>6} {'cpu %':>6} {'cpu %/call':>10} {'late p50':>9} "
                f"{'late p99':>9} {'gaps':>6} {'dropped ms':>10} "
                f"{'sent q ms':>9} {'max':>5} {'rx slack':>8} {'rx q ms':>7} "
                f"{'max':>5} {'trim ms':>7} {'jb late/lost':>12}"
            )
            spec = {"pcmu": "pcmu", "opus": "opus/48000/2"}[codec]
            for calls in args.steps:
                with ExitStack() as stack:
                    # Children inherit the starting thread's core: the peers get theirs.
                    if others is not None:
                        _pin(0, others)
                    peers = [
                        stack.enter_context(echo_peer(codecs=(spec,), lifetime=600))
                        for _ in range(math.ceil(calls / PER_PEER))
                    ]
                    if own is not None:
                        _pin(0, own)
                    result = run_step(calls, codec, args.seconds, environment, peers)
                ok = (
                    result["late_p99"] < 40
                    and result["gaps"] == 0
                    and result["dropped_ms"] == 0
                )
                if ok:
                    best[codec] = calls
                print(
                    f"{result['calls']:>6} {result['cpu_pct']:>6.1f} "
                    f"{result['cpu_per_call']:>10.2f} {result['late_p50']:>9.2f} "
                    f"{result['late_p99']:>9.2f} {result['gaps']:>6} "
                    f"{result['dropped_ms']:>10.0f} {result['sent_p50']:>9.0f} "
                    f"{result['sent_max']:>5.0f} {result['slack_mean']:>8.1f} "
                    f"{result['received_p50']:>7.0f} {result['received_max']:>5.0f} "
                    f"{result['trimmed_ms']:>7.0f} "
                    f"{result['jb_late']:>6.0f}/{result['jb_lost']:<5.0f}  "
                    f"{'ok' if ok else 'FAIL'}"
                )
                if args.threads:
                    top = sorted(result["split"].items(), key=lambda kv: -kv[1])[:5]
                    print(
                        "        cpu % by thread: "
                        + ", ".join(f"{name} {pct:.1f}" for name, pct in top)
                    )
        from calls.runtime.engine import current_engine
        from config import home

        engine = current_engine()
        if engine is not None:
            home.run_sync(engine.stop())
        print()
        for codec in codecs:
            print(
                f"{codec.upper()}: largest passing step {best.get(codec, 0)} calls on "
                "one core (target: 100 PCMU calls)"
            )


if __name__ == "__main__":
    main()
