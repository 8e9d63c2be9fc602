"""Group names and the publish step that fans events out after their transaction commits."""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal, TypedDict

from channels.layers import get_channel_layer

from config import home

logger = logging.getLogger(__name__)


class EventMessage(TypedDict):
    type: Literal["event.published"]
    envelope: dict[str, Any]


def _hex(value: uuid.UUID | str) -> str:
    return uuid.UUID(str(value)).hex


def environment_group(environment_public_id: uuid.UUID | str) -> str:
    return f"env.{_hex(environment_public_id)}"


def session_group(session_public_id: uuid.UUID | str) -> str:
    return f"session.{_hex(session_public_id)}"


def call_group(call_public_id: uuid.UUID | str) -> str:
    return f"call.{_hex(call_public_id)}"


async def _send(groups: list[str], message: EventMessage) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            await layer.group_send(group, message)
        except Exception:
            logger.exception(
                "Publishing %s to %s failed", message["envelope"]["type"], group
            )


def publish(environment_public_id: uuid.UUID | str, envelope: dict[str, Any]) -> None:
    """Fan an event out to its environment's and session's groups, on the home loop."""
    groups = [environment_group(environment_public_id)]
    if envelope.get("sessionId"):
        groups.append(session_group(envelope["sessionId"]))
    message: EventMessage = {"type": "event.published", "envelope": envelope}
    home.submit(_send(groups, message))
