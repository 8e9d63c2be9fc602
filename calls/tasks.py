from __future__ import annotations

from celery import shared_task

from calls import hosts


@shared_task(time_limit=60, soft_time_limit=50)
def reap_orphaned_calls() -> int:
    """End the calls of processes that stopped beating (idempotent: safe to run twice)."""
    return hosts.reap_orphaned_calls()
