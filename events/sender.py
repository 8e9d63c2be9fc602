"""One signed POST of an event to an endpoint, and what came of it. No retry logic here.

The body is the event's envelope as compact JSON; the request carries the Standard
Webhooks headers (events.signing), is never redirected, and connects only to addresses
the URL rules (events.urlguard) passed a moment before.
"""

from __future__ import annotations

import functools
import json
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import certifi
import httpx
from django.conf import settings
from django.utils import timezone

from events import signing, urlguard
from events.models import Event, WebhookEndpoint

USER_AGENT = "Switchboard-Webhooks/1.0"
RESPONSE_EXCERPT_BYTES = 1024


@dataclass(frozen=True)
class Outcome:
    """What one HTTP attempt came to."""

    succeeded: bool = False
    retryable: bool = False
    gone: bool = False
    status_code: int | None = None
    latency_ms: int | None = None
    error: str = ""
    retry_after: float | None = None
    response_body: str = ""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if it parses."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def _classify(status_code: int) -> tuple[bool, bool, bool]:
    """(succeeded, retryable, gone) for an HTTP status."""
    if 200 <= status_code < 300:
        return True, False, False
    if status_code == 410:
        return False, False, True
    return False, status_code in (408, 429) or status_code >= 500, False


# ---------------------------------------------------------------- the request


def body_of(event: Event) -> bytes:
    from events.services import envelope_of

    return json.dumps(envelope_of(event), separators=(",", ":")).encode()


def valid_secrets(endpoint: WebhookEndpoint) -> list[str]:
    """The current secret, then the previous one while its overlap lasts."""
    secrets_ = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires and expires > timezone.now():
        secrets_.append(endpoint.previous_secret)
    return secrets_


def send(endpoint: WebhookEndpoint, event: Event) -> Outcome:
    """POST one event to an endpoint, signed; never raises for the receiver's faults."""
    try:
        target = urlguard.vet(
            endpoint.url,
            allow_http=settings.WEBHOOK_ALLOW_HTTP,
            allow_private=settings.WEBHOOK_ALLOW_PRIVATE,
        )
    except urlguard.UrlUnresolvable as exc:
        return Outcome(retryable=True, error=str(exc))
    except urlguard.UrlRefused as exc:
        return Outcome(error=str(exc))
    body = body_of(event)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signing.signed_headers(
            str(event.public_id), int(time.time()), body, valid_secrets(endpoint)
        ),
    }
    timeout = settings.WEBHOOK_TIMEOUT_S
    started = time.monotonic()

    def elapsed_ms() -> int:
        return round((time.monotonic() - started) * 1000)

    try:
        status_code, retry_after, excerpt = _post(target, body, headers, timeout)
    except httpx.TimeoutException:
        return Outcome(
            retryable=True,
            latency_ms=elapsed_ms(),
            error=f"No response within {timeout:g} s.",
        )
    except httpx.HTTPError as exc:
        return Outcome(
            retryable=True,
            latency_ms=elapsed_ms(),
            error=f"{type(exc).__name__}: {exc}"[:500],
        )
    succeeded, retryable, gone = _classify(status_code)
    error = ""
    if not succeeded:
        error = f"The receiver answered HTTP {status_code}."
        if 300 <= status_code < 400:
            error += " Redirects are not followed; use the final URL."
    return Outcome(
        succeeded=succeeded,
        retryable=retryable,
        gone=gone,
        status_code=status_code,
        latency_ms=elapsed_ms(),
        error=error,
        retry_after=parse_retry_after(retry_after) if retryable else None,
        response_body=excerpt,
    )


@functools.cache
def _tls() -> ssl.SSLContext:
    # Built once: loading the CA bundle costs ~100 ms, too much for every attempt.
    return ssl.create_default_context(cafile=certifi.where())


def _post(
    target: urlguard.Target, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, str | None, str]:
    """POST to the vetted addresses in turn (next one only if connecting fails)."""
    parts = target.parts
    userinfo, _, host_port = parts.netloc.rpartition("@")
    failure: httpx.HTTPError | None = None
    for address in target.addresses:
        literal = f"[{address}]" if ":" in address else address
        netloc = (
            f"{userinfo}@{literal}:{target.port}"
            if userinfo
            else (f"{literal}:{target.port}")
        )
        url = parts._replace(netloc=netloc).geturl()
        # Connect to the address that was checked; TLS still verifies the name.
        extensions = {"sni_hostname": target.host} if parts.scheme == "https" else {}
        with httpx.Client(
            timeout=timeout, follow_redirects=False, trust_env=False, verify=_tls()
        ) as client:
            try:
                with client.stream(
                    "POST",
                    url,
                    content=body,
                    headers={**headers, "host": host_port},
                    extensions=extensions,
                ) as response:
                    return (
                        response.status_code,
                        response.headers.get("retry-after"),
                        _excerpt(response),
                    )
            except httpx.ConnectError as exc:
                failure = exc
    assert failure is not None
    raise failure


def _excerpt(response: httpx.Response) -> str:
    """The start of the response body, for the delivery log; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes(RESPONSE_EXCERPT_BYTES):
        chunks.append(chunk)
        size += len(chunk)
        if size >= RESPONSE_EXCERPT_BYTES:
            break
    return b"".join(chunks)[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")
