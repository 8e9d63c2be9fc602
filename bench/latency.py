"""Mouth-to-ear latency the platform adds, at 10, 50 and 90 % of a process's capacity.

N calls to the simulator's echo peer (``…0001``) over the real media socket. Every call
streams 20 ms frames in real time, silence except one marked frame a second: a 1 kHz
tone at -23 dBFS (speech to the playout trimmer, so never dropped) whose first two
samples carry the frame's sequence number and a marker constant. The client timestamps
the marked frame's send and its echo's arrival; the added latency is arrival - send -
100 ms, the echo peer's own delay (``EchoLeg`` returns each frame exactly five media-clock
ticks after it heard it: ``calls/carriers/simulator/peers.py``). What remains is the
platform's: the client's socket to the server, the wait in the playout buffer for the
call's next tick (0-20 ms by the call's phase; 2-7 ms with ``MEDIA_ALIGN_TICKS=true``
in the environment, the call read in the phase after its client's frames arrive), the
runtime, and the socket back.

Capacity is ``--capacity`` (default 300: ``MEDIA_MAX_CALLS``'s default, about what one
core carried in ``bench/media_socket.py`` with recording on). One uvicorn
process with the media protocol on uvloop, as ``make run`` serves the media path
(``bench/media_socket.py``'s server), pinned to one core; the clients on the other.

    .venv/bin/python bench/latency.py                       # capacity 300: 30, 150, 270 calls
    .venv/bin/python bench/latency.py --capacity 100 --seconds 20

Goal: p99 added latency <= 25 ms at 50 % of capacity. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _loadgen as lg
import media_socket as ms

LOADS = (10, 50, 90)
GOAL_LOAD, GOAL_P99_MS = 50, 25.0
MARK_EVERY = 50  # frames: one marked frame a second
LATE_SENDS_MS = 5.0  # p99 of the clients' sends past their deadlines that voids a run
# The marked frame: sequence number and marker (as _loadgen's frames), then a tone.
_t = np.arange(2, lg.FRAME_SAMPLES) / 16000
TONE_BYTES = (0.1 * np.sin(2 * np.pi * 1000 * _t)).astype("<f4").tobytes()
_ID = struct.Struct("<ff")
_SILENT_MESSAGE = lg._BINARY_HEADER + lg.ZERO_FRAME


class MarkedClient(lg.RawClient):
    """A real-time stream of silence with a marked frame every second; only the marked
    frames are timed (``send_t`` stays 0 for the others, so they are not counted).

    With ``stall_frames``, the client stalls that long every ``stall_every`` frames
    (from ``stall_offset`` on) and then sends what it captured meanwhile at once, as a
    network hiccup delivers it. A marked frame is timed from its capture, its due time;
    those captured during a stall are not timed (their lateness is the stall's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mark_slot = 0
        self.stall_frames = 0
        self.stall_every = 0
        self.stall_offset = 0
        self.held: list[bytes] = []  # captured during a stall, not sent yet

    def send(self, seq: int) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        stalled = (
            self.stall_frames > 0
            and seq >= self.stall_offset
            and (seq - self.stall_offset) % self.stall_every < self.stall_frames
        )
        if seq % MARK_EVERY != self.mark_slot:
            message = _SILENT_MESSAGE
        else:
            if not stalled:
                self.send_t[seq] = time.perf_counter()
            message = (
                lg._BINARY_HEADER
                + _ID.pack((seq + 1) / 65536.0, lg.MARKER)
                + TONE_BYTES
            )
        if stalled:
            self.held.append(message)
            return
        if self.held:
            transport.write(b"".join(self.held))
            self.held.clear()
        transport.write(message)


async def open_clients(
    server: ms.Server,
    calls: Sequence[tuple[str, str]],
    n_frames: int,
    args: argparse.Namespace,
) -> tuple[list[lg.Client], list[str]]:
    """Open every call's media socket and wait for its ``ready``."""
    gate = asyncio.Semaphore(32)
    headers = {"Authorization": f"Bearer {server.api_key}"}

    async def one(index: int, sid: str, cid: str) -> lg.Client | str:
        path = f"/api/v1/sessions/{sid}/calls/{cid}/media"
        client = MarkedClient(ms.HOST, server.port, path, headers, n_frames, True)
        # Spread the marked frames over the second, and the stalls over their period.
        client.mark_slot = index % MARK_EVERY
        if args.stall_ms:
            client.stall_frames = round(args.stall_ms / lg.FRAME_MS)
            client.stall_every = round(args.stall_every * 1000 / lg.FRAME_MS)
            client.stall_offset = index * 37 % client.stall_every
        async with gate:
            try:
                await asyncio.wait_for(client.start(), 20)
                await asyncio.wait_for(client.ready, 20)
            except Exception as exc:
                await client.close()
                return f"{type(exc).__name__}: {exc}"
        return client

    outcomes = await asyncio.gather(
        *(one(index, sid, cid) for index, (sid, cid) in enumerate(calls))
    )
    return (
        [c for c in outcomes if not isinstance(c, str)],
        [c for c in outcomes if isinstance(c, str)],
    )


async def run_load(
    server: ms.Server, n: int, args: argparse.Namespace
) -> lg.StepResult:
    n_frames = round((args.warmup + args.seconds) / lg.FRAME_S)
    api = ms.Api(server, args.record)
    calls: list[tuple[str, str]] = []
    clients: list[lg.Client] = []
    try:
        try:
            calls = await api.place_calls(n, args.calls_per_session)
        except Exception as exc:
            return lg.StepResult(n=n, connected=0, setup_error=f"calls: {exc}")
        clients, errors = await open_clients(server, calls, n_frames, args)
        if errors:
            result = lg.StepResult(n=n, connected=len(clients))
            result.setup_error = f"{len(errors)} sockets failed, e.g. {errors[0]}"
            return result
        result = await lg.stream(
            clients, args.warmup, args.seconds, ms.ECHO_DELAY_S, server.proc.pid
        )
        result.n = n
        return result
    finally:
        await lg.close_clients(clients)
        if calls:
            await api.end_calls(calls)
        await api.aclose()


TABLE_HEAD = (
    "| load | calls | marked frames | p50 ms | p99 ms | max ms | lost "
    "| server CPU | other CPU | lag99 ms |\n"
    "|-----:|------:|--------------:|-------:|-------:|-------:|-----:"
    "|-----------:|----------:|---------:|"
)


def fmt_row(load: int, r: lg.StepResult) -> str:
    if r.setup_error:
        return f"| {load:>3} % | {r.n:>5} | {r.setup_error} |"
    return (
        f"| {load:>3} % | {r.n:>5} | {r.sent:>13} | {r.p50_ms:6.1f} | {r.p99_ms:6.1f} "
        f"| {r.max_ms:6.1f} | {r.lost:>4} | {r.server_cpu * 100:8.0f} % "
        f"| {r.other_cpu * 100:7.0f} % | {r.send_lag_p99_ms:8.1f} |"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--capacity",
        type=int,
        default=300,
        help="calls one process carries (MEDIA_MAX_CALLS's default; measure yours "
        "with bench/media_socket.py)",
    )
    parser.add_argument(
        "--loads", type=int, nargs="+", default=list(LOADS), help="% of capacity"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured first")
    parser.add_argument(
        "--stall-ms",
        type=int,
        default=0,
        help="each client stalls this long every --stall-every seconds, then sends "
        "what it captured meanwhile at once (0: never)",
    )
    parser.add_argument("--stall-every", type=float, default=10.0, help="seconds")
    parser.add_argument(
        "--target-ms",
        type=int,
        help="the server's MEDIA_PLAYOUT_TARGET_MS (default: the setting's default)",
    )
    parser.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record the calls (the product's default)",
    )
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--calls-per-session", type=int, default=50)
    parser.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the clients and the server SCHED_RR (needs root), so other work on "
        "the machine waits for the bench instead of showing up as latency",
    )
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    if args.target_ms is not None:
        os.environ["MEDIA_PLAYOUT_TARGET_MS"] = str(args.target_ms)  # the server's
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-latency-"))
    started = dt.datetime.now(dt.UTC)
    results: list[tuple[int, lg.StepResult]] = []
    try:
        server = ms.start_switchboard(
            "uvicorn", args.server_core, workdir, record=args.record
        )
        try:
            # The process's first calls pay for imports and first-use paths: not here.
            await run_load(
                server, 1, argparse.Namespace(**{**vars(args), "seconds": 1})
            )
            print(TABLE_HEAD, flush=True)
            for load in args.loads:
                n = max(1, round(args.capacity * load / 100))
                result = await run_load(server, n, args)
                if result.send_lag_p99_ms > LATE_SENDS_MS and server.alive():
                    # The clients' own core was taken from them: not the server's doing.
                    print(
                        fmt_row(load, result) + " clients sent late: rerun", flush=True
                    )
                    result = await run_load(server, n, args)
                results.append((load, result))
                print(fmt_row(load, result), flush=True)
                if not server.alive():
                    print(f"server exited:\n{server.log_tail()}")
                    break
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    goal = next((r for load, r in results if load == GOAL_LOAD), None)
    print(
        f"\n{started:%Y-%m-%d %H:%M} UTC, {ms.machine()}; capacity {args.capacity} "
        f"calls; server pinned to core {args.server_core}, clients to core "
        f"{args.client_core}; {args.warmup:g} s warm-up + {args.seconds:g} s "
        f"measured per load; "
        + ("calls recorded; " if args.record else "not recorded; ")
        + (
            f"each client stalls {args.stall_ms} ms every {args.stall_every:g} s; "
            if args.stall_ms
            else ""
        )
        + (
            f"MEDIA_PLAYOUT_TARGET_MS={args.target_ms}; "
            if args.target_ms is not None
            else ""
        )
        + ("SCHED_RR." if args.realtime else "normal scheduler.")
    )
    if goal is not None and not goal.setup_error:
        verdict = "met" if goal.p99_ms <= GOAL_P99_MS and not goal.lost else "not met"
        print(
            f"Goal (p99 added <= {GOAL_P99_MS:g} ms at {GOAL_LOAD} % load): {verdict} "
            f"(p99 {goal.p99_ms:.1f} ms, {goal.lost} marked frames lost)."
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cores = os.sched_getaffinity(0)
    if {args.server_core, args.client_core} - cores or (
        args.server_core == args.client_core
    ):
        print(f"need two distinct cores from {sorted(cores)}", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {args.client_core})
    if args.realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))  # inherited
        except OSError as exc:
            print(f"(could not switch to SCHED_RR: {exc}; normal scheduler)")
            args.realtime = False
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
