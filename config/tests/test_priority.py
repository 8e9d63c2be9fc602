"""The media loop's real-time priority, checked in a process of its own (the test process
keeps its scheduler)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="thread scheduling policies are Linux's",
)

PROBE = textwrap.dedent(
    """
    import json, logging, os, sys, threading
    from config import priority

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    def policy():
        return os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK

    def nice():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen = {}
    if sys.argv[1] == "inherited":
        # A process started under chrt: every thread inherits SCHED_RR.
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(3))
    else:
        seen["applied"] = priority.realtime(int(sys.argv[2]))
    seen["loop"] = [policy(), os.sched_getparam(0).sched_priority]

    def child():
        seen["child"] = [policy(), nice()]

    def background():
        priority.background()
        seen["background"] = [policy(), nice()]

    for target in (child, background):
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
    print(json.dumps(seen))
    """
)


def _run(script: str, *args: str, wrapper: tuple[str, ...] = ()) -> tuple[Any, str]:
    """Run ``script`` in a Python process of its own; what it printed (JSON), its log."""
    done = subprocess.run(
        [*wrapper, sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout), done.stderr


def _probe(*args: str) -> tuple[dict[str, list[int] | bool], str]:
    return _run(PROBE, *args)


def _may_run_realtime(priority: int) -> bool:
    return (
        os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] >= priority
    )


def test_the_loop_runs_round_robin_and_the_threads_it_starts_do_not() -> None:
    seen, log = _probe("apply", "7")
    if _may_run_realtime(7):
        assert seen["applied"] is True
        assert seen["loop"] == [os.SCHED_RR, 7]
        assert "SCHED_RR at priority 7" in log
    else:
        assert seen["applied"] is False
        assert seen["loop"] == [os.SCHED_OTHER, 0]
        assert "MEDIA_REALTIME_PRIORITY=7 not applied" in log
    # Threads the loop starts (the stack's, the executors') share the rest as usual.
    assert seen["child"] == [os.SCHED_OTHER, 0]
    assert seen["background"] == [os.SCHED_OTHER, 10]


PROMOTE = textwrap.dedent(
    """
    import _thread, json, os, sys, threading, time
    from config import priority

    def policy(tid):
        return [
            os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK,
            os.sched_getparam(tid).sched_priority,
        ]

    applied = priority.realtime(int(sys.argv[1]))
    promoted, release = threading.Event(), threading.Event()
    started = []

    def receiver():
        # Once promoted, a thread it starts (as the SIP stack's starts per-call send
        # threads) keeps the normal scheduler.
        promoted.wait()
        child = threading.Thread(target=lambda: started.append(policy(0)))
        child.start()
        child.join()
        release.wait()

    named = threading.Thread(target=receiver, name="stack-rx")
    other = threading.Thread(target=release.wait, name="stack-tx")
    named.start()
    other.start()
    # A native thread (unknown to threading) that names itself, as the SIP stack's do.
    native = []
    def unnamed():
        with open("/proc/thread-self/comm", "w") as comm:
            comm.write("aumem_play")
        native.append(threading.get_native_id())
        release.wait()
    _thread.start_new_thread(unnamed, ())
    while not native:
        time.sleep(0.01)
    first = priority.promote({"stack-rx", "aumem_play"})
    again = priority.promote({"stack-rx", "aumem_play"})
    promoted.set()
    while not started:
        time.sleep(0.01)
    seen = {
        "applied": applied,
        "promoted": [first, again],
        "named": policy(named.native_id),
        "native": policy(native[0]),
        "other": policy(other.native_id),
        "started": started,
    }
    release.set()
    print(json.dumps(seen))
    """
)


def test_the_threads_the_loop_waits_on_run_just_below_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROMOTE, "7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(done.stdout)
    if not _may_run_realtime(7):
        assert seen["applied"] is False
        assert seen["promoted"] == [0, 0]  # nothing above the normal scheduler
        assert seen["named"] == seen["native"] == [os.SCHED_OTHER, 0]
        return
    assert seen["promoted"] == [2, 0]  # once each, by Python name and by the kernel's
    assert seen["named"] == [os.SCHED_RR, 6]
    assert seen["native"] == [os.SCHED_RR, 6]
    assert seen["other"] == [os.SCHED_OTHER, 0]
    assert seen["started"] == [[os.SCHED_OTHER, 0]]


def test_zero_leaves_the_scheduler_alone() -> None:
    seen, log = _probe("apply", "0")
    assert seen["applied"] is False
    assert seen["loop"] == [os.SCHED_OTHER, 0]
    assert "MEDIA_REALTIME_PRIORITY" not in log


@pytest.mark.skipif(not _may_run_realtime(3), reason="needs a real-time priority")
def test_background_work_leaves_a_real_time_policy_it_inherited() -> None:
    seen, _ = _probe("inherited")
    assert seen["loop"] == [os.SCHED_RR, 3]
    assert seen["child"] == [os.SCHED_RR, 0]
    assert seen["background"] == [os.SCHED_OTHER, 10]


RELAX = textwrap.dedent(
    """
    import _thread, json, logging, sys, threading, time
    from config import priority

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    # Each thread reads its own slack (another thread's needs CAP_SYS_NICE even to read).
    slack = {}
    look = threading.Event()
    def own_slack():
        with open(f"/proc/{threading.get_native_id()}/timerslack_ns") as file:
            return int(file.read())

    def report(key):
        look.wait()
        slack[key] = own_slack()

    def named_thread(key, name):
        thread = threading.Thread(target=report, args=(key,), name=name, daemon=True)
        thread.start()

    named_thread("named", "stack-tx")
    named_thread("other", "stack-rx")
    # A native thread (unknown to threading) that names itself, as the SIP stack's do.
    native = []
    def unnamed():
        with open("/proc/thread-self/comm", "w") as comm:
            comm.write("Audio TX")
        native.append(threading.get_native_id())
        report("native")
    _thread.start_new_thread(unnamed, ())
    while not native:
        time.sleep(0.01)
    relaxed = [
        priority.relax({"stack-tx", "Audio TX"}, 0),
        priority.relax({"stack-tx", "Audio TX"}, 7),
        priority.relax({"stack-tx", "Audio TX"}, 7),
    ]
    named_thread("later", "stack-tx")  # as the next call's send thread
    relaxed.append(priority.relax({"stack-tx", "Audio TX"}, 7))
    look.set()
    deadline = time.monotonic() + 10
    while len(slack) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    slack["loop"] = own_slack()
    print(json.dumps({"relaxed": relaxed, **slack}))
    """
)


def _may_set_other_threads_slack() -> bool:
    """Root or CAP_SYS_NICE (bit 23 of the effective capabilities)."""
    status = Path("/proc/self/status").read_text()
    effective = next(line for line in status.splitlines() if line.startswith("CapEff"))
    return bool(int(effective.split()[1], 16) >> 23 & 1)


def test_threads_that_poll_get_timer_slack_once_each() -> None:
    seen, log = _run(RELAX)
    before = seen["loop"]  # what threads inherit
    assert seen["other"] == before  # a thread of another name: unchanged
    if not _may_set_other_threads_slack():
        assert seen["relaxed"] == [0, 0, 0, 0]
        assert seen["named"] == seen["native"] == seen["later"] == before
        assert log.count("SIP_SEND_SLACK_MS=7 not applied") == 1
        return
    # 0 changes nothing; then once each, by Python name and by the kernel's, and a
    # thread started since.
    assert seen["relaxed"] == [0, 2, 0, 1]
    assert seen["named"] == seen["native"] == seen["later"] == 7_000_000
    assert "not applied" not in log


def test_without_the_privilege_timer_slack_is_left_alone_with_one_warning() -> None:
    # As root, the probe runs without CAP_SYS_NICE (util-linux's setpriv drops it).
    wrapper: tuple[str, ...] = ()
    if _may_set_other_threads_slack():
        wrapper = ("setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice")
    seen, log = _run(RELAX, wrapper=wrapper)
    assert seen["relaxed"] == [0, 0, 0, 0]
    assert seen["named"] == seen["native"] == seen["later"] == seen["loop"]
    assert seen["other"] == seen["loop"]
    assert log.count("SIP_SEND_SLACK_MS=7 not applied") == 1
    assert "CAP_SYS_NICE" in log
