"""Small formatting helpers for the dashboard's templates."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from dashboard.templatetags import wording

register = template.Library()


@register.filter
def phone(address: str | None) -> SafeString | str:
    """An address as a phone number where it is one, the stored value in its title."""
    if not address:
        return ""
    shown = wording.phone_number(address)
    if shown == address:
        return address
    return format_html('<span class="phone" title="{}">{}</span>', address, shown)


@register.filter
def phone_number(address: str | None) -> str:
    """The same as text, for titles and options."""
    return wording.phone_number(address) if address else ""


@register.filter
def state_words(state: str) -> str:
    return wording.state_words(state)


@register.filter
def end_reason_words(reason: str) -> str:
    return wording.end_reason_words(reason)


@register.simple_tag
def call_words_json() -> str:
    """The words of states and end reasons, for the script that writes live rows."""
    return json.dumps(
        {"states": wording.STATE_WORDS, "endReasons": wording.END_REASON_WORDS}
    )


@register.filter
def event_summary(event: Any) -> str:
    """One line about an event (its data), as the page's script writes for live ones."""
    data = event.data if isinstance(event.data, dict) else {}
    call = data.get("call") if isinstance(data.get("call"), dict) else None
    if call:
        reason = call.get("endReason")
        muted = (
            " (muted)"
            if call.get("audioMuted") and call.get("state") != "ended"
            else ""
        )
        peer = wording.phone_number(str(call.get("peerJid") or ""))
        state = wording.state_words(str(call.get("state") or "")).lower()
        return f"{peer} {state}" + (
            f" ({wording.end_reason_words(reason)})" if reason else muted
        )
    if event.type == "auth.qr":
        return "new pairing QR"
    if "connectionState" in data:
        return str(data["connectionState"])
    if "phoneJid" in data:
        return f"paired as {wording.phone_number(str(data['phoneJid']))}"
    if "session" in data and isinstance(data["session"], dict):
        return str(data["session"].get("displayName", ""))
    if "filename" in data:
        return f"{data['filename']} {data.get('status', '')}"
    if "kind" in data and "recordingId" in data:
        return f"{data['kind']} recording"
    return ""


@register.filter
def duration(ms: int | None) -> str:
    """Milliseconds as m:ss (or h:mm:ss)."""
    if not ms:
        return "0:00"
    seconds = int(ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


@register.filter
def filesize(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
