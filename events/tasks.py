from __future__ import annotations

from celery import shared_task

from events import delivery


# An attempt is at most a connect, a write and a read of WEBHOOK_TIMEOUT_S (10 s) each, per
# address tried; the limits stop anything stranger. Acks late: a task whose worker died is
# redelivered, finds its attempt row taken and sends nothing; the sweep closes that
# attempt as interrupted and queues the next one.
@shared_task(
    name="events.deliver_webhook", acks_late=True, soft_time_limit=60, time_limit=90
)
def deliver_webhook(delivery_id: str, number: int, manual: bool = False) -> str | None:
    """Make one attempt of a webhook delivery (a no-op if it was made already)."""
    row = delivery.attempt(delivery_id, number, manual=manual)
    if row is None:
        return None
    return "succeeded" if row.succeeded else "failed"


@shared_task(
    name="events.sweep_webhook_deliveries", soft_time_limit=100, time_limit=120
)
def sweep_webhook_deliveries() -> int:
    """Queue overdue webhook deliveries and close attempts whose worker died."""
    return delivery.sweep()


# The one periodic purge of rows past their retention: the event log's, then ended calls
# and deleted sessions (calls/retention.py); each logs its own counts.
@shared_task(name="events.purge_expired", soft_time_limit=1800, time_limit=1860)
def purge_expired() -> dict[str, int]:
    """Delete events, deliveries, attempts, idempotency records, ended calls and
    deleted sessions past retention; return the counts by kind."""
    from calls import retention as call_retention
    from events import retention

    return retention.purge_expired() | call_retention.purge_expired()
