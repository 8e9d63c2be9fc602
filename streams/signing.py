"""The handshake signature of dial-out streams. No Django here.

Every stream handshake carries ``X-Switchboard-Signature: t=<unix seconds>,v1=<hex>``,
where ``<hex>`` is HMAC-SHA256, keyed with the environment's signing secret, of
``"<t>.<url>"`` and ``<url>`` is the stream's ``url`` exactly as it was created. A
receiver recomputes it, compares in constant time and refuses stale timestamps::

    import hashlib, hmac, time

    def verify(header: str, url: str, secret: str, tolerance: int = 300) -> bool:
        fields = dict(part.split("=", 1) for part in header.split(","))
        t = int(fields["t"])
        expected = hmac.new(
            secret.encode(), f"{t}.{url}".encode(), hashlib.sha256
        ).hexdigest()
        return abs(time.time() - t) <= tolerance and hmac.compare_digest(
            expected, fields["v1"]
        )
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Switchboard-Signature"
TOLERANCE_S = 300


def handshake_signature(secret: str, url: str, timestamp: int) -> str:
    """Return the header value ``t=<timestamp>,v1=<hex HMAC-SHA256 of "t.url">``."""
    digest = hmac.new(
        secret.encode(), f"{timestamp}.{url}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_handshake_signature(
    header: str,
    *,
    url: str,
    secret: str,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Check a signature header for this URL and secret, within the time tolerance."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = handshake_signature(secret, url, timestamp).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, given)
