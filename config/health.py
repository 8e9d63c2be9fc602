"""Health, readiness and load of a server process.

- ``GET /healthz`` (liveness): 200 when the database and the channel layer answer, else
  503; it also reports the process's media load.
- ``GET /readyz`` (readiness, for a proxy or orchestrator routing calls): 503 also when
  the process carries ``MEDIA_MAX_CALLS`` already, so new calls go elsewhere.
- ``GET /metrics``: the same figures in Prometheus' text format.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

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


def media_load() -> dict[str, Any]:
    """What this process's call engine carries now, against its capacity."""
    from calls.runtime.engine import current_engine

    engine = current_engine()
    capacity = int(settings.MEDIA_MAX_CALLS)
    if engine is None:
        return {
            "calls": 0,
            "bridgedSockets": 0,
            "capacity": capacity,
            "full": False,
            "clockLatenessP99Ms": 0.0,
        }
    lateness = engine.clock.lateness_ms()
    return {
        "calls": engine.hosted_calls,
        "bridgedSockets": engine.bridged_sockets,
        "capacity": capacity,
        "full": engine.full,
        "clockLatenessP99Ms": round(float(np.percentile(lateness, 99)), 2)
        if len(lateness)
        else 0.0,
    }


def _checked(*, ready: bool) -> JsonResponse:
    checks = {"database": _check_database(), "channelLayer": _check_channel_layer()}
    failed = {name: error for name, error in checks.items() if error is not None}
    if failed:
        logger.warning("Health check failed: %s", failed)
    media = media_load()
    unavailable = sorted(failed)
    if ready and media["full"]:
        unavailable.append("mediaCapacity")
    return JsonResponse(
        {
            "status": "unavailable" if unavailable else "ok",
            "checks": {
                name: ("ok" if error is None else "failed")
                for name, error in checks.items()
            },
            "failed": unavailable,
            "media": media,
        },
        status=503 if unavailable else 200,
    )


def healthz(request: HttpRequest) -> JsonResponse:
    return _checked(ready=False)


def readyz(request: HttpRequest) -> JsonResponse:
    return _checked(ready=True)


METRICS = (
    ("calls", "gauge", "Calls this process hosts."),
    (
        "bridgedSockets",
        "gauge",
        "Media sockets served here for calls hosted elsewhere.",
    ),
    ("capacity", "gauge", "MEDIA_MAX_CALLS: calls and bridged sockets taken (0: any)."),
    ("full", "gauge", "1 while new calls and bridged sockets are refused."),
    ("clockLatenessP99Ms", "gauge", "p99 lateness of the media clock's 20 ms ticks."),
)


def metrics(request: HttpRequest) -> HttpResponse:
    """The media load in Prometheus' text exposition format."""
    load = media_load()
    lines = []
    for key, kind, help_text in METRICS:
        name = "switchboard_media_" + "".join(
            f"_{c.lower()}" if c.isupper() else c for c in key
        )
        lines += [
            f"# HELP {name} {help_text}",
            f"# TYPE {name} {kind}",
            f"{name} {float(load[key])}",
        ]
    return HttpResponse(
        "\n".join(lines) + "\n", content_type="text/plain; version=0.0.4"
    )
