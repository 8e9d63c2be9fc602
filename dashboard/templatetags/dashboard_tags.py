"""Small formatting helpers for the dashboard's templates."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


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
        return f"{call.get('peerJid', '')} {call.get('state', '')}" + (
            f" ({reason})" if reason else muted
        )
    if event.type == "auth.qr":
        return "new pairing QR"
    if "connectionState" in data:
        return str(data["connectionState"])
    if "phoneJid" in data:
        return f"paired as {data['phoneJid']}"
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
