"""Scheduling priority of the media loop's thread (Linux; elsewhere nothing changes).

Under the normal scheduler the media loop shares its core with every other runnable
thread: the database executors, the recording writer and, in a SIP media process, two
or three of the stack's threads per call, each waking 50 times a second. Whenever the
loop has more than a few milliseconds of work they take their turns in the middle of
it: measured on one core with 65-75 SIP calls, the loop got about half the core while it
had work, and its ticks ran up to 100-200 ms late (p99 38-92 ms).

With ``MEDIA_REALTIME_PRIORITY`` set, the loop's thread runs ``SCHED_RR`` at that
priority, so it runs whenever it has work and ticks on time (p99 2-5 ms in the same
runs); the threads it starts keep the normal scheduler and share what it leaves. Its
cost: those threads wait for the loop instead, so a SIP call's received audio, which
the stack hands over on its own threads, arrives less evenly (bench/README.md). Real-
time scheduling needs root, ``CAP_SYS_NICE`` or an ``RLIMIT_RTPRIO`` that allows the
priority; without them the loop keeps the normal scheduler and a warning says why.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

logger = logging.getLogger(__name__)

BACKGROUND_NICE = 10


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
    logger.info("The media loop runs SCHED_RR at priority %d", priority)
    return True


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
