"""Verify the webhooks Switchboard sends (Standard Webhooks signatures).

::

    verifier = WebhookVerifier(os.environ["SWITCHBOARD_WEBHOOK_SECRET"])  # whsec_…
    event = verifier.verify(request_body_bytes, request_headers)          # or raises

Each delivery carries ``webhook-id`` (the event id, the same on every retry),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: one
``v1,<base64 HMAC-SHA256>`` per secret of the endpoint, space separated — two for 24 h
after ``rotate-secret``. The signed content is ``"{id}.{timestamp}.{raw body}"`` and
the HMAC key is the base64-decoded part of ``whsec_…``. A delivery verifies when its
timestamp is within ``tolerance`` of now and any of its signatures matches any of the
verifier's secrets (give it the old and the new one while you switch). Verify the raw
bytes you received, before any JSON parsing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import cast

from switchboard_sdk._errors import WebhookVerificationError
from switchboard_sdk.types import Event

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
DEFAULT_TOLERANCE_S = 300


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret looks like whsec_<base64>") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<signature>`` of a delivery: what Switchboard puts in ``webhook-signature``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookVerifier:
    """Checks deliveries against one or more ``whsec_…`` secrets."""

    def __init__(
        self, secrets: str | Iterable[str], *, tolerance: float = DEFAULT_TOLERANCE_S
    ) -> None:
        names = [secrets] if isinstance(secrets, str) else list(secrets)
        if not names:
            raise ValueError("give at least one webhook secret")
        self._keys = [_key(secret) for secret in names]
        self.tolerance = tolerance

    def verify(
        self,
        body: bytes | str,
        headers: Mapping[str, str],
        *,
        now: float | None = None,
    ) -> Event:
        """Return the delivered event, or raise ``WebhookVerificationError``."""
        raw = body.encode() if isinstance(body, str) else bytes(body)
        lowered = {name.lower(): value for name, value in headers.items()}
        msg_id = lowered.get("webhook-id")
        timestamp = lowered.get("webhook-timestamp")
        signatures = lowered.get("webhook-signature")
        if not (msg_id and timestamp and signatures):
            raise WebhookVerificationError(
                "missing webhook-id, -timestamp or -signature"
            )
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise WebhookVerificationError(
                "webhook-timestamp is not a number"
            ) from None
        current = time.time() if now is None else now
        if sent_at < current - self.tolerance:
            raise WebhookVerificationError("the delivery's timestamp is too old")
        if sent_at > current + self.tolerance:
            raise WebhookVerificationError("the delivery's timestamp is in the future")
        content = f"{msg_id}.{sent_at}.".encode() + raw
        expected = [
            hmac.new(key, content, hashlib.sha256).digest() for key in self._keys
        ]
        for candidate in signatures.split():
            version, _, encoded = candidate.partition(",")
            if version != "v1":
                continue
            try:
                given = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                continue
            # Every comparison in constant time, whichever secret matches.
            if any(hmac.compare_digest(given, digest) for digest in expected):
                try:
                    return cast(Event, json.loads(raw))
                except ValueError:
                    raise WebhookVerificationError("the body is not JSON") from None
        raise WebhookVerificationError("no signature matches")


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | Iterable[str],
    *,
    tolerance: float = DEFAULT_TOLERANCE_S,
) -> Event:
    """``WebhookVerifier(secret, tolerance=...).verify(body, headers)``."""
    return WebhookVerifier(secret, tolerance=tolerance).verify(body, headers)
