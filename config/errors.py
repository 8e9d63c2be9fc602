"""The one exception hierarchy: failures a client can act on, each with a stable ``code``.

Services, the runtime and consumers raise these; the API renders them as RFC 9457 problem
details (``config.api.errors``) and sockets as ``error`` frames. No Django or DRF here.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A failure the client can act on; `code` is stable and machine-readable."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        title: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.param = param
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(self.detail)


class InvalidRequest(ApplicationError):
    status = 400
    code = "validation_error"
    title = "Invalid request"


class Unauthenticated(ApplicationError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')


class Forbidden(ApplicationError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(ApplicationError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(ApplicationError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(ApplicationError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(ApplicationError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"
