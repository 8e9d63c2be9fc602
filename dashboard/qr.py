"""The pairing QR as an image the page can show without another request."""

from __future__ import annotations

import segno


def qr_data_uri(payload: str) -> str:
    """Draw a QR payload as an SVG ``data:`` URI (dark modules on white, quiet zone kept)."""
    return segno.make(payload, error="m", micro=False).svg_data_uri(
        scale=5, border=4, dark="#111827", light="#ffffff"
    )
