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

Threads that poll on a short sleep can be given timer slack (``relax``): the SIP stack's
per-call send threads wake every 4 ms to send a packet every 20 ms; allowed to wake up to
10 ms later, they wake less often and together, which measured on one core with 75 SIP
calls took their share from 27-31 % of the core to 15-20 %.
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


class _NewThreads:
    """This process's threads not looked at before, by name: each caller (promotion,
    timer slack) keeps its own account, so a thread one passes over the other still sees.
    """

    def __init__(self) -> None:
        self._examined: set[int] = set()
        self._lock = threading.Lock()

    def named(self, names: Collection[str]) -> list[int]:
        """Ids of the threads started since the last look that are called one of
        ``names`` (their Python name, or for native threads the kernel's)."""
        python_names = {t.native_id: t.name for t in threading.enumerate()}
        default = Path("/proc/self/comm").read_text().strip()
        found = []
        with self._lock:
            present = {int(entry) for entry in os.listdir("/proc/self/task")}
            self._examined.intersection_update(present)
            for tid in present - self._examined:
                name = python_names.get(tid)
                if name is None:
                    try:
                        name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
                    except OSError:  # ended meanwhile
                        continue
                    if name == default:  # a native thread not named yet: look again
                        continue
                self._examined.add(tid)
                if name in names:
                    found.append(tid)
        return found


_to_promote = _NewThreads()
_to_relax = _NewThreads()
# Whether writing another thread's timer slack was refused (it is not tried again).
_slack_refused = False


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
    promoted = 0
    for tid in _to_promote.named(names):
        try:
            # Not inherited: the threads these start (the SIP stack's per-call send
            # threads) stay with the normal scheduler.
            os.sched_setscheduler(
                tid, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(priority)
            )
        except OSError:
            continue
        promoted += 1
    return promoted


def relax(names: Collection[str], slack_ms: int) -> int:
    """Let the kernel defer the timed wake-ups of the threads called one of ``names``
    by up to ``slack_ms`` (their timer slack), so that it serves them in fewer, shared
    wake-ups instead of each on its own.

    For threads that poll on a short sleep and act only when their own clock says so:
    the SIP stack's per-call send threads sleep 4 ms at a time and send a packet when
    one is due, so each wakes 250 times a second to send 50 packets. Needs root or
    ``CAP_SYS_NICE`` (a thread's slack is set from another thread through ``/proc``);
    without them a warning says so once and nothing changes. Looks only at threads
    started since the last call; returns how many it changed.
    """
    global _slack_refused
    if not slack_ms or _slack_refused or sys.platform != "linux":
        return 0
    relaxed = 0
    for tid in _to_relax.named(names):
        try:
            Path(f"/proc/{tid}/timerslack_ns").write_text(str(slack_ms * 1_000_000))
        except PermissionError as exc:
            _slack_refused = True
            logger.warning(
                "SIP_SEND_SLACK_MS=%d not applied (%s): the SIP stack's send threads "
                "keep waking every 4 ms. It needs root or CAP_SYS_NICE.",
                slack_ms,
                exc,
            )
            return relaxed
        except OSError:  # ended meanwhile
            continue
        relaxed += 1
    return relaxed


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
