"""``Idempotency-Key`` on creating POSTs: same key + same body within 24 h replays."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.auth import environment_of
from config.errors import Conflict, InvalidRequest

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def _fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    data = request.data
    plain: dict[str, Any] = {}
    if hasattr(data, "lists"):
        items = list(data.lists())
    elif isinstance(data, dict):
        items = [(name, [value]) for name, value in data.items()]
    else:
        items = [("_", [data])]
    for name, values in items:
        rendered = []
        for item in values:
            if isinstance(item, UploadedFile):
                file_digest = hashlib.sha256()
                for chunk in item.chunks():
                    file_digest.update(chunk)
                item.seek(0)
                rendered.append({"file": item.name, "sha256": file_digest.hexdigest()})
            else:
                rendered.append(item)
        plain[str(name)] = rendered
    digest.update(json.dumps(plain, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def invalid_key() -> InvalidRequest:
    return InvalidRequest(
        f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters.",
        code="invalid_idempotency_key",
    )


def key_reused() -> Conflict:
    return Conflict(
        f"This {HEADER} was used with a different request.",
        code="idempotency_key_reused",
    )


def request_in_progress() -> Conflict:
    return Conflict(
        f"A request with this {HEADER} is still being processed.",
        code="idempotency_request_in_progress",
        headers={"Retry-After": "1"},
    )


def honours_idempotency_key(view_method: Callable[..., Any]) -> bool:
    """Whether a view method was made ``idempotent`` (the schema documents the header)."""
    return bool(getattr(view_method, "idempotent", False))


def idempotent(view_method: Callable[..., Response]) -> Callable[..., Response]:
    """Make a creating POST honour ``Idempotency-Key``."""
    from accounts.models import IdempotencyRecord

    @functools.wraps(view_method)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return view_method(self, request, *args, **kwargs)
        if not key or len(key) > MAX_KEY_LENGTH:
            raise invalid_key()
        environment = environment_of(request)
        fingerprint = _fingerprint(request)
        cutoff = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
        IdempotencyRecord.objects.filter(
            environment=environment, key=key, created_at__lt=cutoff
        ).delete()
        record = None
        for _ in range(3):
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        environment=environment, key=key, fingerprint=fingerprint
                    )
                break
            except IntegrityError:
                existing = IdempotencyRecord.objects.filter(
                    environment=environment, key=key
                ).first()
                if existing is None:
                    # The request holding the key failed and let it go meanwhile: the
                    # key is free again, so try to take it.
                    continue
                if existing.fingerprint != fingerprint:
                    raise key_reused() from None
                if existing.state != IdempotencyRecord.State.DONE:
                    raise request_in_progress() from None
                replay = Response(existing.response_body, status=existing.status_code)
                replay["Idempotent-Replayed"] = "true"
                return replay
        if record is None:
            raise request_in_progress()
        try:
            response = view_method(self, request, *args, **kwargs)
        except BaseException:
            record.delete()
            raise
        if response.status_code >= 500:
            record.delete()
            return response
        record.state = IdempotencyRecord.State.DONE
        record.status_code = response.status_code
        record.response_body = response.data
        record.save(update_fields=["state", "status_code", "response_body"])
        return response

    wrapper.idempotent = True  # type: ignore[attr-defined]
    return wrapper
