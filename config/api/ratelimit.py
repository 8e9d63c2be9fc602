"""Per-API-key rate limits: an atomic Redis counter in production, in-process otherwise.

When Redis cannot be reached the limiter does not fail the request: it counts in this
process's own window for a while (``FALLBACK_S``), says so once in the log, and goes back
to Redis by itself once Redis answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import cache
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

WINDOW_SECONDS = 60

# INCR and PEXPIRE in one round trip, atomically; returns the count and the window's TTL.
_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}
"""


class _LocalWindow:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def count(self, key: str) -> int:
        now = time.monotonic()
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
            return 0 if now - start >= WINDOW_SECONDS else count

    def hit(self, key: str) -> tuple[int, float]:
        now = time.monotonic()
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
            if now - start >= WINDOW_SECONDS:
                start, count = now, 0
            count += 1
            self._windows[key] = (start, count)
            if len(self._windows) > 100_000:
                self._windows = {
                    k: v
                    for k, v in self._windows.items()
                    if now - v[0] < WINDOW_SECONDS
                }
            return count, WINDOW_SECONDS - (now - start)


_local = _LocalWindow()


logger = logging.getLogger(__name__)

# After Redis failed, requests count in-process this long before Redis is tried again.
FALLBACK_S = 5.0
_fallback_until = 0.0
_fallback_lock = threading.Lock()


@cache
def _redis_client() -> Any:
    import redis

    return redis.Redis.from_url(
        str(settings.REDIS_URL), socket_connect_timeout=0.5, socket_timeout=0.5
    )


@cache
def _redis_script() -> Any:
    return _redis_client().register_script(_LUA)


def _redis_failed(error: Exception) -> None:
    global _fallback_until
    with _fallback_lock:
        first = _fallback_until == 0.0
        _fallback_until = time.monotonic() + FALLBACK_S
    if first:
        logger.warning(
            "Rate limiter cannot reach Redis (%s): counting in this process until "
            "it answers again",
            type(error).__name__,
        )


def hit(key: str) -> tuple[int, float]:
    """Count one request against a key's window; return (count, seconds left)."""
    global _fallback_until
    if settings.REDIS_URL and time.monotonic() >= _fallback_until:
        try:
            count, ttl_ms = _redis_script()(
                keys=[f"{settings.REDIS_KEY_PREFIX}:rl:{key}"],
                args=[WINDOW_SECONDS * 1000],
            )
        except Exception as error:  # redis.ConnectionError, TimeoutError, …
            _redis_failed(error)
            return _local.hit(key)
        if _fallback_until:
            with _fallback_lock:
                _fallback_until = 0.0
            logger.warning("Rate limiter reaches Redis again")
        return int(count), max(int(ttl_ms), 0) / 1000
    return _local.hit(key)


def count_of(key: str) -> int:
    """How many hits a key's current window holds (without adding one)."""
    if settings.REDIS_URL and time.monotonic() >= _fallback_until:
        try:
            value = _redis_client().get(f"{settings.REDIS_KEY_PREFIX}:rl:{key}")
            return int(value or 0)
        except Exception as error:
            _redis_failed(error)
    return _local.count(key)


class ApiKeyRateThrottle(BaseThrottle):
    """Allow API_RATE_LIMIT_PER_MINUTE requests per key per minute."""

    def allow_request(self, request: Request, view: Any) -> bool:
        public_id = getattr(request.auth, "public_id", None)
        if public_id is None:
            return True
        count, remaining = hit(f"key:{public_id}")
        self._wait = remaining
        return count <= settings.API_RATE_LIMIT_PER_MINUTE

    def wait(self) -> float:
        return max(getattr(self, "_wait", 1.0), 1.0)
