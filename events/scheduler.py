"""An in-process timer queue: run callables on a small thread pool at their due time.

The embedded default has no Celery worker, and an eager task with a countdown would block
its caller for the whole countdown. Webhook attempts there go through this scheduler
instead: one timer thread keeps a heap of due times and hands due work to a few worker
threads, so a caller never waits and a thousand pending retries cost a thousand heap
entries, not a thousand sleeping threads. No Django here.
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

Job = tuple[float, int, Callable[..., Any], tuple[Any, ...]]


class LocalScheduler:
    """Run ``fn(*args)`` after ``delay`` seconds on a worker thread; optionally a periodic job."""

    def __init__(
        self,
        *,
        name: str,
        workers: int,
        periodic: tuple[Callable[[], float], Callable[[], Any]] | None = None,
    ) -> None:
        self._name = name
        self._workers = workers
        self._periodic = periodic  # (interval getter, job): e.g. a sweep of lost work
        self._heap: list[Job] = []
        self._sequence = itertools.count()
        self._condition = threading.Condition()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._running = 0
        self._next_periodic = 0.0
        self._stopped = False

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)``; returns at once."""
        due = time.monotonic() + max(0.0, delay)
        with self._condition:
            self._start()
            heapq.heappush(self._heap, (due, next(self._sequence), fn, args))
            self._condition.notify()

    def pending(self) -> int:
        """Jobs waiting or running (tests wait for this to reach zero)."""
        with self._condition:
            return len(self._heap) + self._running

    def due_or_running(self, within: float = 0.0) -> int:
        """Jobs running now or due within ``within`` seconds."""
        horizon = time.monotonic() + within
        with self._condition:
            return self._running + sum(1 for job in self._heap if job[0] <= horizon)

    def stop(self, timeout: float = 10.0) -> None:
        """Drop pending jobs, let running ones finish (up to ``timeout``), stop the threads."""
        with self._condition:
            self._stopped = True
            self._heap.clear()
            self._condition.notify_all()
            thread, pool = self._thread, self._pool
        if thread is not None:
            thread.join(timeout)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _start(self) -> None:
        if self._stopped:
            raise RuntimeError("the scheduler was stopped")
        if self._thread is not None:
            return
        self._pool = ThreadPoolExecutor(
            max_workers=self._workers, thread_name_prefix=self._name
        )
        self._thread = threading.Thread(
            target=self._loop, name=f"{self._name}-timer", daemon=True
        )
        if self._periodic is not None:
            # First run soon after start: picks up work a previous process left due.
            self._next_periodic = time.monotonic() + 1.0
        self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._condition:
                if self._stopped:
                    return
                now = time.monotonic()
                wake = self._heap[0][0] if self._heap else now + 3600.0
                if self._periodic is not None:
                    wake = min(wake, self._next_periodic)
                if wake > now:
                    self._condition.wait(wake - now)
                    continue
                if self._periodic is not None and self._next_periodic <= now:
                    interval, job = self._periodic
                    self._next_periodic = now + max(1.0, interval())
                    self._submit(job, ())
                    continue
                _, _, fn, args = heapq.heappop(self._heap)
                self._submit(fn, args)

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        # Called with the condition held.
        assert self._pool is not None
        self._running += 1
        self._pool.submit(self._run, fn, args)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:
            logger.exception("Scheduled job %s failed", getattr(fn, "__name__", fn))
        finally:
            with self._condition:
                self._running -= 1
