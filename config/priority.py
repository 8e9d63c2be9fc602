"""Scheduling priority of a media process's threads (Linux; elsewhere nothing changes).

Under the normal scheduler the media loop shares its core with every other runnable
thread: the database executors, the recording writer and, in a SIP media process, two
or three of the stack's threads per call, each waking 50 times a second. Whenever the
loop has more than a few milliseconds of work they take their turns in the middle of
it: measured on one core with 65-85 SIP calls, the loop got about half the core while it
had work, and its ticks ran up to 100-200 ms late (p99 20-170 ms).

With ``MEDIA_REALTIME_PRIORITY`` set, the loop's thread runs ``SCHED_RR`` at that
priority: it runs whenever it has work, and ticks on time (p99 3-6 ms in the same runs).
The threads it starts keep the normal scheduler and share what it leaves, except the
few it waits on, which ``promote`` puts one step below it: a SIP stack's receive path
(otherwise received audio queues behind the stack's per-call send threads and arrives
late for the loop's reads). Background work (the recording writer) runs at
nice 10 (``background``). Real-time scheduling needs root, ``CAP_SYS_NICE`` or an
``RLIMIT_RTPRIO`` that allows the priority; without them the loop keeps the normal
scheduler and a warning says why.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Collection
from pathlib import Path

logger = logging.getLogger(__name__)

BACKGROUND_NICE = 10

# The media loop's real-time priority once it took effect (0: the normal scheduler).
_loop_priority = 0
# Threads ``promote`` has looked at (by id; pruned to the living ones at each look).
_examined: set[int] = set()
_examined_lock = threading.Lock()


def realtime(priority: int) -> bool:
    """Run the calling thread (the media loop) ``SCHED_RR`` at ``priority`` (1-99).

    Threads it starts afterwards get the normal scheduler (``SCHED_RESET_ON_FORK``):
    the stack's per-call threads and the database executors stay out of its way.
    Returns whether it took effect.
    """
    if not priority:
        return False
    if sys.platform != "linux":
        logger.warning("MEDIA_REALTIME_PRIORITY is ignored: it needs Linux")
        return False
    try:
        os.sched_setscheduler(
            0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(priority)
        )
    except (OSError, ValueError) as exc:
        logger.warning(
            "MEDIA_REALTIME_PRIORITY=%d not applied (%s): the media loop keeps the "
            "normal scheduler. It needs root, CAP_SYS_NICE or an RLIMIT_RTPRIO of at "
            "least %d.",
            priority,
            exc,
            priority,
        )
        return False
    global _loop_priority
    _loop_priority = priority
    logger.info("The media loop runs SCHED_RR at priority %d", priority)
    return True


def promote(names: Collection[str]) -> int:
    """Run the threads called one of ``names`` (their Python name, or for native threads
    the kernel's) ``SCHED_RR`` one step below the media loop, when it runs real-time.

    For the few threads the loop waits on: a SIP stack's receive path, which hands each
    call's received audio over on its own clock, would otherwise queue behind the
    stack's per-call send threads and arrive late for the loop's reads. Looks only at
    threads started since the last call; returns how many it promoted.
    """
    if not _loop_priority or sys.platform != "linux":
        return 0
    priority = max(1, _loop_priority - 1)
    python_names = {thread.native_id: thread.name for thread in threading.enumerate()}
    default = Path("/proc/self/comm").read_text().strip()
    promoted = 0
    with _examined_lock:
        present = {int(entry) for entry in os.listdir("/proc/self/task")}
        _examined.intersection_update(present)
        for tid in present - _examined:
            name = python_names.get(tid)
            if name is None:
                try:
                    name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
                except OSError:  # ended meanwhile
                    continue
                if name == default:  # a native thread not named yet: look again later
                    continue
            _examined.add(tid)
            if name in names:
                try:
                    # Not inherited: the threads these start (the SIP stack's per-call
                    # send threads) stay with the normal scheduler.
                    os.sched_setscheduler(
                        tid,
                        os.SCHED_RR | os.SCHED_RESET_ON_FORK,
                        os.sched_param(priority),
                    )
                except OSError:
                    continue
                promoted += 1
    return promoted


def background() -> None:
    """Let the media loop come first: the calling thread only has to keep up on
    average. It leaves any real-time policy it inherited (a process started under
    ``chrt``) for the normal scheduler, at nice 10."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    try:
        if os.sched_getscheduler(thread) != os.SCHED_OTHER:
            os.sched_setscheduler(thread, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, thread, BACKGROUND_NICE)
    except OSError:
        logger.warning("Could not lower a background thread's priority")
