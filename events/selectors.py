from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Environment
from events.models import Event


def event_list(
    environment: Environment, *, session_public_id: str | None = None
) -> QuerySet[Event]:
    events = Event.objects.filter(environment=environment)
    if session_public_id is not None:
        events = events.filter(session_public_id=session_public_id)
    return events


def call_timeline(environment: Environment, call_public_id: str) -> QuerySet[Event]:
    """Events of one call, oldest first."""
    return Event.objects.filter(
        environment=environment, data__callId=str(call_public_id)
    ).order_by("id")
