"""The Celery app; the beat schedule is declared here, once."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _reaper_interval() -> float:
    from django.conf import settings

    return float(settings.CALL_REAPER_INTERVAL_S)


@app.on_after_finalize.connect
def _schedule(sender: Celery, **_: object) -> None:
    """The beat schedule, declared once, here."""
    # Calls whose hosting process died end `failed` within ENGINE_STALE_AFTER_S plus
    # one interval (30 s + 15 s by default: inside the promised minute).
    sender.add_periodic_task(
        _reaper_interval(),
        sender.signature("calls.tasks.reap_orphaned_calls"),
        name="reap orphaned calls",
    )
    # Recordings past their environment's retention: files and rows deleted in batches
    # (safe if two runs overlap); the same run finalises spools a lost task left behind.
    from django.conf import settings

    sender.add_periodic_task(
        float(settings.RECORDING_PURGE_INTERVAL_S),
        sender.signature("recordings.purge"),
        name="purge expired recordings",
    )
    # Webhook retries due later than WEBHOOK_COUNTDOWN_MAX_S, deliveries whose task was
    # lost, and attempts whose worker died (events/delivery.py): at most a sweep late.
    from django.conf import settings as django_settings

    webhook_queue = django_settings.WEBHOOK_QUEUE
    sender.add_periodic_task(
        float(django_settings.WEBHOOK_SWEEP_INTERVAL_S),
        sender.signature(
            "events.sweep_webhook_deliveries",
            **({"queue": webhook_queue} if webhook_queue else {}),
        ),
        name="sweep webhook deliveries",
    )
