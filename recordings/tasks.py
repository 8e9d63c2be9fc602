from __future__ import annotations

import logging

from celery import Task, shared_task
from django.conf import settings

from recordings import services

logger = logging.getLogger(__name__)

# Backoff between finalisation attempts: 5 s doubling to 10 min; after the last retry
# (about 1.5 h in all) the periodic purge's spool sweep keeps trying.
RETRY_BASE_S = 5
RETRY_MAX_S = 600


# A 4-hour call is three 460 MB files; the limits allow a slow upload, not a hung one.
@shared_task(
    name="recordings.finalise",
    bind=True,
    acks_late=True,
    max_retries=12,
    soft_time_limit=900,
    time_limit=960,
)
def finalise_recordings(self: Task, call_id: str) -> int:
    """Store an ended call's spooled WAVs as recordings (idempotent); return how many."""
    try:
        return len(services.recordings_finalise(call_id=call_id))
    except Exception as exc:
        if self.request.is_eager:
            # Embedded, a retry would run at once, in a loop: the spool stays for the
            # next purge's sweep instead.
            logger.exception("Finalising the recordings of call %s failed", call_id)
            return 0
        countdown = min(RETRY_MAX_S, RETRY_BASE_S * 2**self.request.retries)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="recordings.purge", soft_time_limit=1800, time_limit=1860)
def purge_recordings() -> int:
    """Delete expired recordings (files and rows); finalise spools left behind."""
    purged = services.recordings_purge_expired(
        batch_size=settings.RECORDING_PURGE_BATCH
    )
    services.recordings_finalise_leftovers()
    return purged
