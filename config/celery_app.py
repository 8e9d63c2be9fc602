"""The Celery app; beat's schedule is the periodic jobs of ``config.schedule``."""

from __future__ import annotations

import os
import signal
import threading
import time

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# SIGTERM starts a warm shutdown, which waits for the running tasks however long they
# take (a purge may run for half an hour). Past this, it turns cold (as SIGQUIT does):
# Celery cancels them, and the broker hands the unacknowledged ones (tasks are
# acknowledged late) to another worker. The worker is gone within 10 s of SIGTERM.
WARM_SHUTDOWN_S = 4.0


@app.on_after_finalize.connect
def _schedule(sender: Celery, **_: object) -> None:
    """Give beat the periodic jobs (declared once, in config.schedule)."""
    from config import schedule

    schedule.add_to_beat(sender)


_warm_shutdown = threading.Event()


@signals.worker_init.connect
def _watch_warm_shutdown(**_: object) -> None:
    """Be ready to turn a warm shutdown cold (the thread waits until one starts)."""

    def watch() -> None:
        _warm_shutdown.wait()
        time.sleep(WARM_SHUTDOWN_S)
        # Still here: the worker's own SIGQUIT handler does the cold shutdown.
        os.kill(os.getpid(), signal.SIGQUIT)

    # Started here rather than from the signal handler below, which must not take the
    # locks starting a thread takes (the main thread it interrupts may hold them).
    threading.Thread(target=watch, name="warm-shutdown-limit", daemon=True).start()


@signals.worker_shutting_down.connect
def _bound_warm_shutdown(how: str = "", **_: object) -> None:
    """Turn a warm shutdown cold if running tasks still hold it after WARM_SHUTDOWN_S."""
    if how == "Warm":
        _warm_shutdown.set()
