"""Where a media loop's stalls go: running, waiting for the core, or blocked.

Watches one thread of another process from outside (so it takes nothing from it but
reads of /proc): every half millisecond its scheduler statistics (time on the CPU, time
runnable but waiting for a core) and the system call it is in. A stall is a stretch of
at least ``--min-ms`` in which the thread was never seen waiting in ``epoll`` (an event
loop that keeps up returns there between ticks). For each stall it prints how long the
thread ran, how long it waited for the core, and the rest (blocked: a lock such as the
GIL shows as ``futex``), with the states it was seen in.

    .venv/bin/python bench/stalls.py PID                 # the process's busiest thread
    .venv/bin/python bench/stalls.py PID --thread TID --seconds 20

Run it on another core than the process it watches (``taskset -c 1 …``). Linux only;
reading another process's ``syscall`` file needs the same user (or root).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

SYSCALLS = {
    "0": "read",
    "1": "write",
    "7": "poll",
    "35": "nanosleep",
    "44": "sendto",
    "45": "recvfrom",
    "46": "sendmsg",
    "47": "recvmsg",
    "202": "futex",
    "230": "clock_nanosleep",
    "232": "epoll_wait",
    "281": "epoll_pwait",
    "441": "epoll_pwait2",
}


def _cpu_ticks(task: Path) -> int:
    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def busiest_thread(pid: int, over_s: float = 2.0) -> int:
    """The thread that used the most CPU over the next ``over_s`` seconds."""
    tasks = list(Path(f"/proc/{pid}/task").iterdir())
    before = {}
    for task in tasks:
        try:
            before[task] = _cpu_ticks(task)
        except OSError:
            continue
    time.sleep(over_s)
    used = {}
    for task, ticks in before.items():
        try:
            used[task] = _cpu_ticks(task) - ticks
        except OSError:
            continue
    return int(max(used, key=lambda task: used[task]).name)


def sample(pid: int, tid: int, seconds: float) -> list[tuple[float, int, int, str]]:
    """(time, ns on the CPU, ns waiting for it, state) every ~0.5 ms."""
    base = Path(f"/proc/{pid}/task/{tid}")
    samples = []
    with open(base / "schedstat") as sched, open(base / "syscall") as syscall:
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end:
            sched.seek(0)
            ran, waited, _ = sched.read().split()
            syscall.seek(0)
            number = syscall.read().split()[0]
            samples.append((now, int(ran), int(waited), SYSCALLS.get(number, number)))
            time.sleep(0.0005)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pid", type=int)
    parser.add_argument("--thread", type=int, help="default: the busiest thread")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--min-ms", type=float, default=30.0)
    args = parser.parse_args()
    tid = args.thread or busiest_thread(args.pid)
    name = Path(f"/proc/{args.pid}/task/{tid}/comm").read_text().strip()
    print(f"watching thread {tid} ({name}) of {args.pid} for {args.seconds:.0f} s")
    samples = sample(args.pid, tid, args.seconds)
    start = samples[0][0]
    stalls = []
    idle_at = 0
    for index, (now, *_rest, state) in enumerate(samples):
        if state.startswith("epoll"):
            if now - samples[idle_at][0] >= args.min_ms / 1000:
                stalls.append((idle_at, index))
            idle_at = index
    total = samples[-1][1] - samples[0][1]
    print(
        f"{len(samples)} samples; the thread ran {total / 1e6 / args.seconds / 10:.1f} % "
        f"of the time; {len(stalls)} stalls of {args.min_ms:.0f} ms or more"
    )
    print(f"{'at s':>7} {'ms':>6} {'ran':>6} {'waited':>7} {'other':>6}  states seen")
    for first, last in stalls:
        a, b = samples[first], samples[last]
        length = (b[0] - a[0]) * 1000
        ran, waited = (b[1] - a[1]) / 1e6, (b[2] - a[2]) / 1e6
        states = Counter(s[3] for s in samples[first + 1 : last])
        seen = ", ".join(f"{state} {count}" for state, count in states.most_common(4))
        print(
            f"{a[0] - start:>7.2f} {length:>6.0f} {ran:>6.1f} {waited:>7.1f} "
            f"{length - ran - waited:>6.1f}  {seen}"
        )
    if stalls:
        ran = sum((samples[b][1] - samples[a][1]) / 1e6 for a, b in stalls)
        waited = sum((samples[b][2] - samples[a][2]) / 1e6 for a, b in stalls)
        print(
            f"in stalls: ran {ran:.0f} ms, waited for the core {waited:.0f} ms "
            f"({100 * waited / max(ran + waited, 1e-9):.0f} % of their running time)"
        )


if __name__ == "__main__":
    main()
