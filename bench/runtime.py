"""Media-clock benchmark: N concurrent calls to the echo peer, no sockets.

Each call has a runtime ticked by the process's one media clock every 20 ms: it reads
20 ms from a playout buffer (kept fed, as a live socket would), hands the frame to the
simulated echo peer and gives the peer's frame to one subscriber that copies it (as a
recorder or socket would). Prints CPU per call and the clock's tick lateness.

    .venv/bin/python bench/runtime.py [--calls 250 500 1000 1500] [--seconds 10]

The process pins itself to one core. Goal: 1000 calls with tick lateness p99 < 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django

django.setup()

from audio import FRAME_SAMPLES  # noqa: E402
from audio.playout import PlayoutBuffer  # noqa: E402
from calls.carriers.simulator.peers import EchoLeg  # noqa: E402
from calls.runtime.clock import LATENESS_WINDOW, PHASES  # noqa: E402
from calls.runtime.engine import Engine  # noqa: E402
from calls.runtime.runtime import CallRuntime  # noqa: E402


class Listener:
    def leg_ringing(self) -> None: ...

    def leg_answered(self) -> None: ...

    def leg_ended(self, reason: str, detail: object = None) -> None: ...


class CopySubscriber:
    def __init__(self) -> None:
        self.last = np.zeros(FRAME_SAMPLES, dtype=np.float32)

    def on_media(self, inbound: np.ndarray, outbound: np.ndarray) -> None:
        self.last[:] = inbound


async def feed(buffers: list[PlayoutBuffer], speech: np.ndarray) -> None:
    """Keep every buffer fed, spread over ticks like clients streaming in real time."""
    slice_index = 0
    while True:
        await asyncio.sleep(0.02)
        for buffer in buffers[slice_index::25]:
            if buffer.buffered < 16000:
                buffer.write(speech)
        slice_index = (slice_index + 1) % 25


async def run(calls: int, seconds: float) -> dict[str, float]:
    engine = Engine()
    speech = (0.1 * np.sin(np.arange(16000) / 7)).astype(np.float32)
    buffers = []
    for index in range(calls):
        runtime = CallRuntime(
            engine,
            call_pk=index,
            call_id=f"bench-{index}",
            environment_id="bench",
            session_id="bench",
            direction="outgoing",
            state="active",
            snapshot={},
        )
        runtime.leg = EchoLeg("echo", Listener())
        buffer = PlayoutBuffer(16000 * 10)
        buffer.write(speech)
        buffers.append(buffer)
        runtime.sources.append(buffer)
        runtime.subscribers.append(CopySubscriber())
        engine.clock.add(runtime)
    engine.clock.start()
    await asyncio.sleep(1.0)  # warm up
    ticks_before = engine.clock.ticks
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    feeder = asyncio.get_running_loop().create_task(feed(buffers, speech))
    await asyncio.sleep(seconds)
    feeder.cancel()
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - wall_before
    ticks = engine.clock.ticks - ticks_before
    # Per clock step (one phase's calls, every 5 ms).
    lateness = engine.clock.lateness_ms()[-min(ticks * PHASES, LATENESS_WINDOW) :]
    cost = engine.clock.tick_cost_ms()
    await engine.clock.stop()
    return {
        "calls": calls,
        "cpu_pct": 100 * cpu / wall,
        "cpu_us_per_call_tick": 1e6 * cpu / max(ticks, 1) / calls,
        "tick_ms_p50": float(np.percentile(cost, 50)),
        "late_p50": float(np.percentile(lateness, 50)),
        "late_p99": float(np.percentile(lateness, 99)),
        "ticks_per_s": ticks / wall,
        "resyncs": engine.clock.resyncs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[250, 500, 1000, 1500])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    print(f"media clock, echo peer, {args.seconds:.0f} s per run, pinned to one core")
    print(
        f"{'calls':>6} {'cpu %':>6} {'µs/call/tick':>13} {'step ms p50':>12} "
        f"{'late p50 ms':>12} {'late p99 ms':>12} {'ticks/s':>8}"
    )
    for calls in args.calls:
        result = asyncio.run(run(calls, args.seconds))
        verdict = "ok" if result["late_p99"] < 5 else "over 5 ms"
        print(
            f"{result['calls']:>6} {result['cpu_pct']:>6.1f} {result['cpu_us_per_call_tick']:>13.2f} "
            f"{result['tick_ms_p50']:>12.2f} {result['late_p50']:>12.2f} {result['late_p99']:>12.2f} "
            f"{result['ticks_per_s']:>8.1f}  {verdict}"
        )


if __name__ == "__main__":
    main()
