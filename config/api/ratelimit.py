"""Per-API-key rate limits: an atomic Redis counter in production, in-process otherwise."""

from __future__ import annotations

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


@cache
def _redis_script() -> Any:
    import redis

    client = redis.Redis.from_url(str(settings.REDIS_URL))
    return client.register_script(_LUA)


def hit(key: str) -> tuple[int, float]:
    """Count one request against a key's window; return (count, seconds left)."""
    if settings.REDIS_URL:
        count, ttl_ms = _redis_script()(
            keys=[f"{settings.REDIS_KEY_PREFIX}:rl:{key}"], args=[WINDOW_SECONDS * 1000]
        )
        return int(count), max(int(ttl_ms), 0) / 1000
    return _local.hit(key)


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
