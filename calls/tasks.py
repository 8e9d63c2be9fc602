from __future__ import annotations

from celery import shared_task

from calls import hosts


@shared_task(time_limit=60, soft_time_limit=50)
def reap_orphaned_calls() -> int:
    """End the calls of processes that stopped beating (idempotent: safe to run twice)."""
    from calls.runtime.engine import current_engine

    # Run in-process (the embedded scheduler), the engine of this very process is alive
    # whatever its last beat says: a process never reaps its own calls.
    local = current_engine()
    return hosts.reap_orphaned_calls(alive_host=local.host_id if local else None)
