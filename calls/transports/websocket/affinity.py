"""Affinity by design: a media socket that lands away from its call's host says where to go.

A call's frames belong in the process that hosts its runtime (``Call.host``). A socket
opened at another process is bridged there over the channel layer, which works but
costs that process far more CPU per call than the call itself (PERF-NOTES). When the
host has an address of its own (``SWITCHBOARD_PROCESS_URL``), the bridged socket's
``ready`` frame carries ``reconnect: {mediaUrl, reason: "bridged"}``, the call's
``mediaUrl`` at its host: a client that reconnects there gets the direct path, and one
that does not keeps working over the bridge. ``ready`` stays the first frame (DESIGN §5),
so clients that predate the hint see nothing new but an extra field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# Calls whose sockets this process bridged, so each is logged once (the newest kept).
_bridged_calls: dict[str, None] = {}
MAX_LOGGED_BRIDGED_CALLS = 10_000


def pointing_to_host(
    send_json: Callable[[dict[str, Any]], None], call: dict[str, Any]
) -> Callable[[dict[str, Any]], None]:
    """``send_json`` for a socket bridged to the process hosting its call: when that
    process has a URL of its own, the ``ready`` frame gains ``reconnect.mediaUrl`` there
    (the bridge carries the call meanwhile, so clients that ignore it still work)."""
    url = call.get("hosted_media_url")
    if call["call_id"] not in _bridged_calls:
        if len(_bridged_calls) >= MAX_LOGGED_BRIDGED_CALLS:
            _bridged_calls.pop(next(iter(_bridged_calls)))
        _bridged_calls[call["call_id"]] = None
        logger.info(
            "Call %s is hosted by %s: its media socket here is bridged (%s)",
            call["call_id"],
            call["host"],
            f"client told to reconnect at {url}"
            if url
            else "the host has no SWITCHBOARD_PROCESS_URL to send the client to",
        )
    if not url:
        return send_json
    hint = {"mediaUrl": url, "reason": "bridged"}

    def send(payload: dict[str, Any]) -> None:
        if payload.get("type") == "ready":
            payload = {**payload, "reconnect": hint}
        send_json(payload)

    return send
