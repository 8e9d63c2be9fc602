"""The plain-dict snapshots of sessions and calls that events, sockets and replies carry.

Built here, in the app's core, so services and the runtime never need the API layer; the
API's serializers add what only the API shows (a call's recordings).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from calls.carriers import get_carrier
from calls.models import Call, CallState, EngineHost, Session
from config.times import iso_ms


def session_snapshot(session: Session) -> dict[str, Any]:
    """``{sessionId, displayName, …, carrier, <carrier>: settings, lastError}``."""
    data: dict[str, Any] = {
        "sessionId": str(session.public_id),
        "displayName": session.display_name,
        "deviceBrowser": session.device_browser,
        "status": session.status,
        "paired": session.paired,
        "active": session.active,
        "connected": session.connected,
        "connectionState": session.connection_state,
        "phoneJid": session.address or None,
        "carrier": session.carrier,
        "lastError": session.last_error or None,
        "createdAt": iso_ms(session.created_at),
        "updatedAt": iso_ms(session.updated_at),
        "connectedAt": iso_ms(session.connected_at),
    }
    described = carrier_settings_of(session)
    if described is not None:
        data[session.carrier] = described
    return data


def carrier_settings_of(session: Session) -> dict[str, Any] | None:
    """What the API shows of a session's carrier settings (never a secret)."""
    from calls.credentials import CredentialsUnreadable, unseal

    try:
        driver = get_carrier(session.carrier)
    except LookupError:
        return None
    try:
        secrets = unseal(session.credentials)
    except CredentialsUnreadable:
        secrets = {}
    return driver.describe_settings(
        session.carrier_settings or {}, secrets, str(session.public_id)
    )


def call_snapshot(call: Call) -> dict[str, Any]:
    """The call snapshot of DESIGN §4.2 (plus ``carrier``, ``endDetail``, ``mediaUrl``)."""
    return {
        "callId": str(call.public_id),
        "sessionId": str(call.session.public_id),
        "peerJid": call.peer_address,
        "direction": call.direction,
        "mediaType": "audio",
        "state": call.state,
        "endReason": call.end_reason or None,
        "endDetail": call.end_detail or None,
        "carrier": call.session.carrier,
        "transport": call.transport or None,
        "mediaUrl": media_url(call),
        "audioMuted": call.audio_muted,
        "record": call.record,
        "createdAt": iso_ms(call.created_at),
        "ringingAt": iso_ms(call.ringing_at),
        "answeredAt": iso_ms(call.answered_at),
        "endedAt": iso_ms(call.ended_at),
        "durationMs": call.duration_ms,
    }


# ---------------------------------------------------------------- mediaUrl

MEDIA_PATH = "/api/v1/sessions/{session_id}/calls/{call_id}/media"


@lru_cache(maxsize=16)
def websocket_base(url: str) -> str:
    """``url`` as the base of WebSocket URLs: http(s) becomes ws(s), no trailing slash."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


# Host id -> the media base URL of that process ("" when it has none). A host id names
# one run of one process (hostname, pid and a random part) and its URL is set when it
# registers, so an entry never goes stale: snapshots, which events and lists build by
# the hundred, look the host up here instead of querying. An id not yet known reloads
# every host in one query (few rows: the live processes and those stopped within the
# hour, see ``reap_orphaned_calls``); one still unknown then is remembered as "".
_host_urls: dict[str, str] = {}
MAX_REMEMBERED_HOSTS = 4096


def host_media_base(host_id: str) -> str:
    """The ws(s):// base URL of the process ``host_id`` names ("" when it has none)."""
    global _host_urls
    url = _host_urls.get(host_id)
    if url is None:
        known = dict(EngineHost.objects.values_list("host_id", "process_url"))
        known.setdefault(host_id, "")
        # A new dict, swapped in whole: threads reading the old one never see it half
        # built.
        kept = _host_urls if len(_host_urls) < MAX_REMEMBERED_HOSTS else {}
        _host_urls = {**kept, **known}
        url = known[host_id]
    return url


def forget_host(host_id: str) -> None:
    """Drop what this process remembers of a host (it registered again)."""
    global _host_urls
    if host_id in _host_urls:
        _host_urls = {k: v for k, v in _host_urls.items() if k != host_id}


def forget_hosts() -> None:
    """Drop everything remembered of hosts (tests that reuse host ids)."""
    global _host_urls
    _host_urls = {}


def _media_path(call: Call) -> str:
    return MEDIA_PATH.format(session_id=call.session.public_id, call_id=call.public_id)


def hosted_media_url(call: Call) -> str | None:
    """The call's media socket URL at the process hosting it, when the call is live and
    that process has a URL of its own (``SWITCHBOARD_PROCESS_URL``)."""
    if not call.host or call.state == CallState.ENDED:
        return None
    base = host_media_base(call.host)
    return base + _media_path(call) if base else None


def media_url(call: Call) -> str:
    """Where a client opens the call's media socket: at its hosting process when that
    process has a URL of its own, else under ``SWITCHBOARD_PUBLIC_URL``."""
    hosted = hosted_media_url(call)
    if hosted is not None:
        return hosted
    return websocket_base(settings.SWITCHBOARD_PUBLIC_URL) + _media_path(call)
