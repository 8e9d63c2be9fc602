"""Status callbacks: a stream's state changes, POSTed to its ``statusCallback`` URL.

The body is the event's envelope (as webhooks carry it), signed with Standard Webhooks
headers whose key is the environment's signing secret. With Celery workers the task
retries with backoff; in the embedded default (eager Celery) a few threads of the
server process deliver, in order, so a slow callback URL never holds up the stream.
Workers may deliver out of order after retries: each body carries its event's id
(time-ordered) and ``createdAt``.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque

import httpx
from celery import Task, shared_task
from django.conf import settings
from django.db import connections

from config.celery_app import app as celery_app
from events.signing import signed_headers
from streams import services, targets

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6


class CallbackFailed(Exception):
    pass


def callback_secret(signing_secret: str) -> str:
    """The Standard Webhooks secret of status callbacks: the environment's signing
    secret (its UTF-8 bytes are the HMAC key), written the way the spec writes keys."""
    return "whsec_" + base64.b64encode(signing_secret.encode()).decode()


def _request(event_id: int, stream_id: int) -> tuple[str, bytes, str, str] | None:
    found = services.status_callback_request(event_id=event_id, stream_id=stream_id)
    if found is None:
        return None
    url, message_id, envelope, signing_secret = found
    body = json.dumps(envelope, separators=(",", ":")).encode()
    return url, body, message_id, callback_secret(signing_secret)


def _post(url: str, body: bytes, message_id: str, secret: str) -> None:
    """One attempt; raise CallbackFailed when it should be retried."""
    try:
        targets.vet(url, ("https", "http"), allow_private=settings.STREAM_ALLOW_PRIVATE)
    except targets.TargetRefused as refusal:
        logger.warning("Stream status callback %s refused: %s", url, refusal)
        return
    headers = {
        "content-type": "application/json",
        "user-agent": "Switchboard-Streams/1.0",
        **signed_headers(message_id, int(time.time()), body, [secret]),
    }
    try:
        response = httpx.post(
            url,
            content=body,
            headers=headers,
            timeout=services.callback_timeout(),
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise CallbackFailed(f"{exc.__class__.__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise CallbackFailed(f"HTTP {response.status_code}")


@shared_task(bind=True, max_retries=MAX_ATTEMPTS - 1, time_limit=60, soft_time_limit=50)
def stream_status_callback(self: Task, event_id: int, stream_id: int) -> None:
    """POST one stream event to the stream's statusCallback, signed like webhooks."""
    request = _request(event_id, stream_id)
    if request is None:
        return
    try:
        _post(*request)
    except CallbackFailed as exc:
        logger.info("Stream status callback to %s failed: %s", request[0], exc)
        raise self.retry(
            exc=exc, countdown=min(300, 5 * 2**self.request.retries)
        ) from exc


def _deliver_here(event_id: int, stream_id: int) -> None:
    try:
        request = _request(event_id, stream_id)
    finally:
        connections.close_all()
    if request is None:
        return
    for attempt in range(MAX_ATTEMPTS):
        try:
            _post(*request)
            return
        except CallbackFailed as exc:
            logger.info("Stream status callback to %s failed: %s", request[0], exc)
            time.sleep(min(30, 2**attempt))


# Embedded delivery: one daemon thread per stream with events waiting, delivering them
# in order. A callback URL that keeps failing never holds up the stream, other streams'
# callbacks nor the process's exit.
_lock = threading.Lock()
_waiting: dict[int, deque[int]] = {}


def _drain(stream_id: int) -> None:
    while True:
        with _lock:
            waiting = _waiting[stream_id]
            if not waiting:
                del _waiting[stream_id]
                return
            event_id = waiting.popleft()
        _deliver_here(event_id, stream_id)


def status_callback_enqueue(event_id: int, stream_id: int) -> None:
    """Deliver an event to its stream's statusCallback: by a worker, or here, in order."""
    if not celery_app.conf.task_always_eager:
        stream_status_callback.delay(event_id, stream_id)
        return
    with _lock:
        waiting = _waiting.get(stream_id)
        if waiting is not None:
            waiting.append(event_id)
            return
        _waiting[stream_id] = deque([event_id])
    threading.Thread(
        target=_drain, args=(stream_id,), name="stream-callbacks", daemon=True
    ).start()
