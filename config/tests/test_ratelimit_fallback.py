"""With Redis unreachable the API keeps answering: the limiter counts in-process."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from config.api import ratelimit
from conftest import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_down(settings: Any) -> Any:
    """A REDIS_URL nothing listens on (port 1), for the limiter only."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    ratelimit._redis_script.cache_clear()
    ratelimit._redis_client.cache_clear()
    ratelimit._fallback_until = 0.0
    yield settings
    ratelimit._redis_script.cache_clear()
    ratelimit._redis_client.cache_clear()
    ratelimit._fallback_until = 0.0


def test_requests_succeed_and_are_still_limited_while_redis_is_down(
    tenant: Tenant, redis_down: Any, caplog: pytest.LogCaptureFixture
) -> None:
    redis_down.API_RATE_LIMIT_PER_MINUTE = 3
    client = tenant.client()
    with caplog.at_level(logging.WARNING, logger="config.api.ratelimit"):
        statuses = [client.get("/api/v1/environment").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    warnings = [r for r in caplog.records if "cannot reach Redis" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per request


def test_an_address_guessing_keys_is_refused_before_any_key_is_read(
    tenant: Tenant, settings: Any
) -> None:
    import secrets

    from rest_framework.test import APIClient

    settings.API_BAD_KEY_LIMIT_PER_MINUTE = 3
    # An address of its own each run (the count lives a minute, in Redis when set).
    address = f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    guesser = APIClient(REMOTE_ADDR=address)
    guesser.credentials(HTTP_AUTHORIZATION="Bearer sb_test_guess")
    statuses = [guesser.get("/api/v1/environment").status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    refused = guesser.get("/api/v1/environment")
    assert refused["Retry-After"] and refused.json()["code"] == "rate_limited"
    # Another address with the right key is unaffected.
    elsewhere = APIClient(REMOTE_ADDR=f"198.19.{secrets.randbelow(256)}.7")
    elsewhere.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.test_key}")
    assert elsewhere.get("/api/v1/environment").status_code == 200
