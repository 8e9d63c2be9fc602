"""An in-process scheduler: one-off calls at their due time, and periodic jobs. No Django.

One-off calls (``call_later``) keep the caller from ever waiting: one timer thread keeps
a heap of due times and hands due work to a few worker threads, so a thousand pending
calls cost a thousand heap entries, not a thousand sleeping threads. The embedded default
sends webhook attempts this way, since an eager Celery task with a countdown would block
its caller for the whole countdown.

Periodic jobs (``every``) each get a thread of their own, so a run never overlaps the
previous run of the same job, a long run never holds up the one-off calls, and a burst
of one-off calls never delays a periodic job. ``config.schedule`` gives this scheduler
the jobs Celery beat runs when there is no beat.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

Due = tuple[float, int, Callable[..., Any], tuple[Any, ...]]


class Scheduler:
    """Run ``fn(*args)`` after a delay on a worker thread, and jobs every interval."""

    def __init__(self, *, name: str, workers: int) -> None:
        self._name = name
        self._workers = workers
        self._heap: list[Due] = []
        self._sequence = itertools.count()
        self._condition = threading.Condition()
        self._pool: ThreadPoolExecutor | None = None
        self._timer: threading.Thread | None = None
        self._periodic: dict[str, threading.Thread] = {}
        self._running = 0
        self._stopped = threading.Event()

    # ------------------------------------------------------------ one-off calls

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` in ``delay`` seconds; returns at once."""
        due = time.monotonic() + max(0.0, delay)
        with self._condition:
            self._check_running()
            if self._timer is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._workers, thread_name_prefix=self._name
                )
                self._timer = threading.Thread(
                    target=self._serve_calls, name=f"{self._name}-timer", daemon=True
                )
                self._timer.start()
            heapq.heappush(self._heap, (due, next(self._sequence), fn, args))
            self._condition.notify()

    def pending(self) -> int:
        """One-off calls waiting or running (tests wait for this to reach zero)."""
        with self._condition:
            return len(self._heap) + self._running

    def due_or_running(self, within: float = 0.0) -> int:
        """One-off calls running now or due within ``within`` seconds."""
        horizon = time.monotonic() + within
        with self._condition:
            return self._running + sum(1 for call in self._heap if call[0] <= horizon)

    def _serve_calls(self) -> None:
        while True:
            with self._condition:
                if self._stopped.is_set():
                    return
                now = time.monotonic()
                wake = self._heap[0][0] if self._heap else now + 3600.0
                if wake > now:
                    self._condition.wait(wake - now)
                    continue
                _, _, fn, args = heapq.heappop(self._heap)
                assert self._pool is not None
                self._running += 1
                self._pool.submit(self._run_call, fn, args)

    def _run_call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:
            logger.exception("Scheduled call %s failed", getattr(fn, "__name__", fn))
        finally:
            with self._condition:
                self._running -= 1

    # ------------------------------------------------------------ periodic jobs

    def every(
        self, name: str, interval: Callable[[], float], job: Callable[[], Any]
    ) -> None:
        """Run ``job()`` every ``interval()`` seconds, the first time one interval from now.

        ``interval`` is read again before each run, so a changed setting takes effect at
        the next run. A run that outlasts the interval delays the next one; it never
        overlaps it. A failure is logged once (again only if it changes) and the job
        keeps its schedule.
        """
        with self._condition:
            self._check_running()
            if name in self._periodic:
                raise ValueError(f"a periodic job named {name!r} exists already")
            thread = threading.Thread(
                target=self._repeat,
                args=(name, interval, job),
                name=f"{self._name}-{name}",
                daemon=True,
            )
            self._periodic[name] = thread
            thread.start()

    def periodic(self) -> list[str]:
        """The names of the periodic jobs, in the order they were added."""
        with self._condition:
            return list(self._periodic)

    def _repeat(
        self, name: str, interval: Callable[[], float], job: Callable[[], Any]
    ) -> None:
        due = time.monotonic() + interval()
        last_failure = ""
        while not self._stopped.wait(max(0.0, due - time.monotonic())):
            started = time.monotonic()
            try:
                job()
            except Exception as exc:
                # Once per distinct failure, not once an interval while it lasts.
                if repr(exc) != last_failure:
                    logger.exception("Periodic job %r failed", name)
                last_failure = repr(exc)
            else:
                if last_failure:
                    logger.info("Periodic job %r succeeded again", name)
                last_failure = ""
            due = started + interval()

    # ------------------------------------------------------------ stopping

    def stop(self, timeout: float = 10.0) -> None:
        """Drop pending calls, let running work finish (up to ``timeout`` for periodic
        jobs), stop the threads. A stopped scheduler takes no more work."""
        with self._condition:
            self._stopped.set()
            self._heap.clear()
            self._condition.notify_all()
            threads = [self._timer, *self._periodic.values()]
            pool = self._pool
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _check_running(self) -> None:
        # Called with the condition held.
        if self._stopped.is_set():
            raise RuntimeError("the scheduler was stopped")
