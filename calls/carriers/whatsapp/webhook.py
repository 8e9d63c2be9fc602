"""What the webhook Meta calls for a WhatsApp session does (the view: ``calls.api.whatsapp``).

- ``GET``: Meta's verification: ``hub.challenge`` echoed when ``hub.mode`` is
  ``subscribe`` and ``hub.verify_token`` is the session's (403 otherwise).
- ``POST``: ``X-Hub-Signature-256`` must be the HMAC-SHA256 of the raw body with the
  session's app secret (compared in constant time; 401 otherwise, nothing read further).
  The ``calls`` field's items for the session's number (calls and call statuses) are
  handed to the process holding the line, and the answer is 200 at once: Meta retries a
  slow endpoint. When no live process holds the line the answer is 503, so Meta tries
  again later.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_ITEMS = 100


def session_of(session_id: str) -> Any:
    from calls.models import Session

    return (
        Session.objects.filter(
            public_id=session_id, carrier="whatsapp", deleted_at__isnull=True
        )
        .only(
            "pk",
            "public_id",
            "carrier_settings",
            "credentials",
            "line_holder",
            "active",
        )
        .first()
    )


def signed(secret: str, body: bytes, header: str) -> bool:
    scheme, _, given = header.partition("=")
    if scheme.strip().lower() != "sha256" or not given:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def items_of(payload: Any, phone_number_id: str) -> list[dict[str, Any]]:
    """The ``calls`` field's calls and call statuses for this number, in order."""
    items: list[dict[str, Any]] = []
    if not isinstance(payload, dict):
        return items
    for entry in payload.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        for change in entry.get("changes") or []:
            if not isinstance(change, dict) or change.get("field") != "calls":
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata") or {}
            if str(metadata.get("phone_number_id") or "") != phone_number_id:
                continue
            for call in value.get("calls") or []:
                if isinstance(call, dict) and call.get("id"):
                    items.append({**_plain(call), "kind": "call"})
            for status in value.get("statuses") or []:
                if (
                    isinstance(status, dict)
                    and status.get("id")
                    and status.get("type", "call") == "call"
                ):
                    items.append({**_plain(status), "kind": "status"})
    return items[:MAX_ITEMS]


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """What the holder needs of an item (JSON types only, bounded)."""
    keep = ("id", "event", "from", "to", "status", "direction", "session", "errors")
    return {key: item[key] for key in keep if key in item}


def dispatch(session: Any, items: list[dict[str, Any]]) -> bool:
    """Hand ``items`` to the process holding the session's line; False if none does."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from calls import hosts
    from calls.carriers import get_carrier
    from calls.carriers.whatsapp.carrier import MESSAGE, WhatsAppCarrier
    from calls.runtime.engine import current_engine
    from config import home

    session_id = str(session.public_id)
    holder = session.line_holder
    engine = current_engine()
    if engine is not None and holder and holder == engine.host_id:
        carrier = get_carrier("whatsapp")
        assert isinstance(carrier, WhatsAppCarrier)
        home.submit(carrier.handle(session_id, items))
        return True
    channel = hosts.live_channel_of(holder) if holder else None
    layer = get_channel_layer()
    if channel is None or layer is None:
        return False
    async_to_sync(layer.send)(
        channel, {"type": MESSAGE, "session_id": session_id, "items": items}
    )
    return True
