"""``GET /healthz``: 200 when the database and the channel layer answer, else 503."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return f"{type(exc).__name__}"
    return None


def _check_channel_layer() -> str | None:
    if not settings.REDIS_URL:
        return None
    try:
        import redis

        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"{type(exc).__name__}"
    return None


def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _check_database(), "channelLayer": _check_channel_layer()}
    failed = {name: error for name, error in checks.items() if error is not None}
    if failed:
        logger.warning("Health check failed: %s", failed)
    return JsonResponse(
        {
            "status": "unavailable" if failed else "ok",
            "checks": {
                name: ("ok" if error is None else "failed")
                for name, error in checks.items()
            },
            "failed": sorted(failed),
        },
        status=503 if failed else 200,
    )
