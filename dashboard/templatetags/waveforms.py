"""A recording's waveform as inline SVG, drawn by the server (no script, CSP-safe)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from dashboard.templatetags.dashboard_tags import duration

register = template.Library()

PEAK = 127  # the stored peaks' range is -PEAK…PEAK (recordings/waveform.py)
HEIGHT = 2 * PEAK
# Quieter than this, a span still shows as a short bar: the line reads as "silence
# here", not "nothing drawn".
MIN_BAR = 6


def bars_path(peaks: list[list[int]]) -> str:
    """One vertical line per span, ``x`` its index, in a box ``HEIGHT`` tall."""
    parts = []
    for index, (low, high) in enumerate(peaks):
        top, bottom = PEAK - int(high), PEAK - int(low)
        if bottom - top < MIN_BAR:
            middle = (top + bottom) // 2
            top, bottom = middle - MIN_BAR // 2, middle + MIN_BAR // 2
        parts.append(f"M{index}.5 {top}V{bottom}")
    return "".join(parts)


@register.simple_tag
def waveform_svg(recording: Any) -> SafeString:
    """The recording's waveform, stretched to the box CSS gives it."""
    peaks = recording.waveform
    if not peaks:
        return format_html(
            '<span class="waveform-missing">{}</span>',
            "Waveform not computed yet" if peaks is None else "No audio",
        )
    return format_html(
        '<svg class="waveform" viewBox="0 0 {width} {height}" '
        'preserveAspectRatio="none" role="img" aria-label="{label}">'
        '<path class="waveform-bars" d="{bars}" stroke="currentColor" '
        'stroke-width="1" fill="none"/></svg>',
        width=len(peaks),
        height=HEIGHT,
        label=f"Waveform of the {recording.kind} track, "
        f"{duration(recording.duration_ms)}",
        bars=bars_path(peaks),
    )
