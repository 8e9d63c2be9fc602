from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from accounts.models import Environment
from config.api.serializers import iso_ms
from events import bus
from events.models import Event


def envelope_of(event: Event) -> dict[str, Any]:
    """Render the public envelope ``{id, type, createdAt, sessionId, data}``."""
    return {
        "id": str(event.public_id),
        "type": event.type,
        "createdAt": iso_ms(event.created_at),
        "sessionId": str(event.session_public_id) if event.session_public_id else None,
        "data": event.data,
    }


def event_emit(
    *,
    environment: Environment,
    type: str,
    data: dict[str, Any],
    session_public_id: uuid.UUID | str | None = None,
) -> Event:
    """Write an event in the caller's transaction; publish it once that commits."""
    event = Event.objects.create(
        environment=environment,
        type=type,
        data=data,
        session_public_id=session_public_id,
    )
    envelope = envelope_of(event)
    env_id = environment.public_id
    transaction.on_commit(lambda: bus.publish(env_id, envelope))
    return event
