"""The pure parts: signatures, the URL rules, backoff, Retry-After."""

from __future__ import annotations

import base64
import ipaddress
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from events import delivery, sender, signing, urlguard


def test_secrets_are_32_random_bytes_in_whsec_form() -> None:
    secret = signing.secret_generate()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert signing.secret_generate() != secret


def test_signatures_match_the_reference_library() -> None:
    secret = signing.secret_generate()
    body = b'{"id":"e1","type":"call.ended","data":{"x":"\\u00e9"}}'
    now = int(time.time())
    headers = signing.signed_headers("e1", now, body, [secret])
    assert Webhook(secret).verify(body, headers) == {
        "id": "e1",
        "type": "call.ended",
        "data": {"x": "é"},
    }
    assert headers["webhook-signature"] == Webhook(secret).sign(
        "e1", datetime.fromtimestamp(now, tz=UTC), body.decode()
    )


def test_two_secrets_give_two_signatures_either_verifies() -> None:
    old, new = signing.secret_generate(), signing.secret_generate()
    body = b"{}"
    headers = signing.signed_headers("e2", int(time.time()), body, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("fc00::1", "private"),
        ("0.0.0.0", "private"),  # noqa: S104 - an address to refuse, not a bind
        ("100.64.0.1", "not publicly routable"),
        ("224.0.0.1", "multicast"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_rules(address: str, reason: str | None) -> None:
    assert urlguard.refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://example.com/", "url_scheme_not_allowed"),
        ("javascript:alert(1)", "url_scheme_not_allowed"),
        ("https:///path", "invalid_url"),
        ("https://example.com/#frag", "invalid_url"),
        ("https://example.com:70000/", "invalid_url"),
        ("https://example.com/" + "x" * 2048, "url_too_long"),
    ],
)
def test_url_shape_rules(url: str, code: str) -> None:
    with pytest.raises(urlguard.UrlRefused) as refused:
        urlguard.parse(url, allow_http=False)
    assert refused.value.code == code


def test_vetting_returns_every_address_to_try() -> None:
    target = urlguard.vet(
        "http://localhost:8080/x", allow_http=True, allow_private=True
    )
    assert target.host == "localhost" and target.port == 8080
    assert "127.0.0.1" in target.addresses or "::1" in target.addresses


def test_backoff_doubles_with_jitter_and_stops_growing_at_the_cap(
    settings: Any,
) -> None:
    settings.WEBHOOK_RETRY_BASE_S = 30
    settings.WEBHOOK_RETRY_MAX_DELAY_S = 12 * 3600
    for number, expected in [(1, 30), (2, 60), (3, 120), (10, 30 * 512)]:
        for _ in range(20):
            assert expected * 0.9 <= delivery.retry_delay(number) <= expected * 1.1
    assert delivery.retry_delay(200) <= 12 * 3600 * 1.1
    assert delivery.retry_delay(1, retry_after=600) == 600


def test_the_default_schedule_spans_about_three_days(settings: Any) -> None:
    """16 attempts; the last one ~2.7 days after the first (jitter aside)."""
    elapsed, attempts = 0.0, 1
    window = settings.WEBHOOK_RETRY_WINDOW_S
    while True:
        delay = min(
            settings.WEBHOOK_RETRY_BASE_S * 2 ** (attempts - 1),
            settings.WEBHOOK_RETRY_MAX_DELAY_S,
        )
        if elapsed + delay > window:
            break
        elapsed += delay
        attempts += 1
    assert attempts == 16
    assert timedelta(days=2.5) < timedelta(seconds=elapsed) < timedelta(days=3)


def test_retry_after_as_seconds_or_a_date() -> None:
    assert sender.parse_retry_after("120") == 120
    assert sender.parse_retry_after(None) is None
    assert sender.parse_retry_after("soon") is None
    later = datetime.now(UTC) + timedelta(seconds=90)
    seconds = sender.parse_retry_after(format_datetime(later, usegmt=True))
    assert seconds is not None and 85 <= seconds <= 91
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert sender.parse_retry_after(past) == 0
