"""The periodic jobs, declared once: Celery beat runs them, or else this process does.

With workers (REDIS_URL set), ``celery -A config beat`` queues them (``config.celery_app``
adds every entry below to its schedule). In the embedded default Celery is eager and no
beat runs: the process's scheduler (``config.scheduler``) then runs the same jobs on their
intervals, each on a thread of its own, calling the task right there. It starts with the
process's home loop (``events.apps``) or at its first use, and ``stop()`` ends it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import close_old_connections

from config.scheduler import Scheduler

if TYPE_CHECKING:
    from celery import Celery


@dataclass(frozen=True)
class Job:
    """A periodic job: an entry of beat's schedule, run here when no beat runs."""

    name: str  # the beat entry's name
    task: str  # the Celery task's name
    interval_setting: str  # the setting holding its interval in seconds, read each time
    queue_setting: str | None = None  # the setting naming a queue of its own, if any

    def interval(self) -> float:
        return float(getattr(settings, self.interval_setting))

    def options(self) -> dict[str, Any]:
        """Celery options of the task beat queues."""
        queue = getattr(settings, self.queue_setting) if self.queue_setting else None
        return {"queue": queue} if queue else {}

    def run(self) -> Any:
        """Run the task on this thread and return its result."""
        from config.celery_app import app

        if self.task not in app.tasks:
            # Outside a worker, a task exists once its module is imported: import
            # every app's tasks module, as a worker does when it starts.
            app.autodiscover_tasks(force=True)
        close_old_connections()
        try:
            return app.tasks[self.task]()
        finally:
            close_old_connections()


JOBS = (
    # Calls whose hosting process died end `failed` within ENGINE_STALE_AFTER_S plus
    # one interval (30 s + 15 s by default: inside the promised minute).
    Job(
        "reap orphaned calls",
        "calls.tasks.reap_orphaned_calls",
        interval_setting="CALL_REAPER_INTERVAL_S",
    ),
    # Recordings past their environment's retention: files and rows deleted in batches
    # (safe if two runs overlap); the same run finalises spools a lost task left behind.
    Job(
        "purge expired recordings",
        "recordings.purge",
        interval_setting="RECORDING_PURGE_INTERVAL_S",
    ),
    # Events, webhook deliveries and attempts past their environment's retention,
    # idempotency records past 24 h (events/retention.py), then ended calls that nothing
    # keeps any more and deleted sessions without calls (calls/retention.py), in batches.
    Job(
        "purge expired events",
        "events.purge_expired",
        interval_setting="EVENT_PURGE_INTERVAL_S",
    ),
    # Assets left `processing` by a worker that died: decoded again (or failed when
    # stuck three times as long).
    Job(
        "sweep stuck assets",
        "assets.sweep_stuck",
        interval_setting="ASSET_SWEEP_INTERVAL_S",
        queue_setting="ASSET_DECODE_QUEUE",
    ),
    # Webhook retries due later than WEBHOOK_COUNTDOWN_MAX_S, deliveries whose task was
    # lost, and attempts whose worker died (events/delivery.py): at most a sweep late.
    Job(
        "sweep webhook deliveries",
        "events.sweep_webhook_deliveries",
        interval_setting="WEBHOOK_SWEEP_INTERVAL_S",
        queue_setting="WEBHOOK_QUEUE",
    ),
)


def add_to_beat(app: Celery) -> None:
    """Add every job to beat's schedule, with its current interval and options."""
    for job in JOBS:
        app.add_periodic_task(
            job.interval(),
            app.signature(job.task, **job.options()),
            name=job.name,
        )


def beat_runs() -> bool:
    """False in the embedded default (eager Celery), where this process runs the jobs."""
    return not settings.CELERY_TASK_ALWAYS_EAGER


# ---------------------------------------------------------------- this process's scheduler

_scheduler: Scheduler | None = None
_lock = threading.Lock()


def scheduler() -> Scheduler:
    """This process's scheduler, started at first use; when no beat runs, it runs JOBS."""
    global _scheduler
    with _lock:
        if _scheduler is None:
            _scheduler = Scheduler(
                name="scheduler", workers=settings.WEBHOOK_LOCAL_WORKERS
            )
            if not beat_runs():
                for job in JOBS:
                    _scheduler.every(job.name, job.interval, job.run)
        return _scheduler


def start() -> None:
    """Run the periodic jobs in this process from now on, unless a beat runs them."""
    if not beat_runs():
        scheduler()


def current() -> Scheduler | None:
    """This process's scheduler if it started (and was not stopped since)."""
    return _scheduler


def stop() -> None:
    """Stop this process's scheduler, dropping what it holds; the next use starts afresh."""
    global _scheduler
    with _lock:
        stopping = _scheduler
    if stopping is None:
        return
    # Until it has stopped, work still finishing (a sweep queueing attempts) finds this
    # scheduler refusing more, rather than starting a fresh one behind our back.
    stopping.stop()
    with _lock:
        if _scheduler is stopping:
            _scheduler = None
