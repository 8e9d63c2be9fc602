"""The purge timer of the embedded default, where no Celery beat runs.

With tasks eager (no REDIS_URL), every process's home loop runs the purge task once per
RECORDING_PURGE_INTERVAL_S, in a worker thread. In the production shape beat schedules it
(``config/celery_app.py``) and this timer stays off.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

logger = logging.getLogger(__name__)

_running: set[asyncio.Task[Any]] = set()


def _purge() -> None:
    from recordings.tasks import purge_recordings

    purge_recordings()


def _due(loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(database_sync_to_async(_purge, thread_sensitive=False)())
    _running.add(task)

    def done(finished: asyncio.Task[Any]) -> None:
        _running.discard(finished)
        if not finished.cancelled() and finished.exception() is not None:
            logger.error("Recording purge failed", exc_info=finished.exception())
        loop.call_later(settings.RECORDING_PURGE_INTERVAL_S, _due, loop)

    task.add_done_callback(done)


def start(loop: asyncio.AbstractEventLoop) -> None:
    """Schedule the periodic purge on this loop when no beat does (tasks eager)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        loop.call_later(settings.RECORDING_PURGE_INTERVAL_S, _due, loop)
