"""The Celery app; beat's schedule is the periodic jobs of ``config.schedule``."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _schedule(sender: Celery, **_: object) -> None:
    """Give beat the periodic jobs (declared once, in config.schedule)."""
    from config import schedule

    schedule.add_to_beat(sender)
