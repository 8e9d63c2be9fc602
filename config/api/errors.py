"""One error model: ApplicationError and its children, rendered as RFC 9457 problem details."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest
from rest_framework import exceptions as drf
from rest_framework.response import Response

from config.errors import (  # noqa: F401  (re-exported: the API layer's names)
    ApplicationError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    UnsupportedMediaType,
)

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://switchboard.dev/problems/"


def request_id_of(request: HttpRequest | None) -> str | None:
    return getattr(request, "request_id", None) if request is not None else None


def problem_body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    param: str | None = None,
    request_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if param is not None:
        body["param"] = param
    if extra:
        body.update(extra)
    body["requestId"] = request_id
    return body


class WireName(str):
    """A field name exactly as the client sent it: a problem's ``param`` shows it as is
    (other names are the serializer's, shown camelCase)."""

    __slots__ = ()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _flatten_validation(
    detail: Any, prefix: str = ""
) -> list[tuple[str | None, str, str]]:
    """Return (param, message, code) for every leaf of a DRF ValidationError detail."""
    items: list[tuple[str | None, str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, WireName):
                name = str(key)
            else:
                name = "" if key == "non_field_errors" else _camel(str(key))
            path = f"{prefix}.{name}" if prefix and name else (name or prefix)
            items.extend(_flatten_validation(value, path))
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list) and not isinstance(
                value, drf.ErrorDetail
            ):
                items.extend(_flatten_validation(value, f"{prefix}[{index}]"))
            else:
                items.extend(_flatten_validation(value, prefix))
    else:
        code = getattr(detail, "code", "invalid") or "invalid"
        items.append((prefix or None, str(detail), str(code)))
    return items


def _from_drf(exc: drf.APIException) -> ApplicationError:
    if isinstance(exc, drf.ValidationError):
        leaves = _flatten_validation(exc.detail)
        param, message, _ = (
            leaves[0] if leaves else (None, "Invalid request.", "invalid")
        )
        detail = f"{param}: {message}" if param else message
        errors = [{"param": p, "detail": m, "code": c} for p, m, c in leaves]
        return InvalidRequest(detail, param=param, extra={"errors": errors})
    if isinstance(exc, drf.ParseError):
        return InvalidRequest(
            str(exc.detail), code="malformed_request", title="Malformed request"
        )
    if isinstance(exc, drf.AuthenticationFailed):
        return Unauthenticated(str(exc.detail), code="invalid_api_key")
    if isinstance(exc, drf.NotAuthenticated):
        return Unauthenticated(str(exc.detail), code="unauthenticated")
    if isinstance(exc, drf.PermissionDenied):
        return Forbidden(str(exc.detail))
    if isinstance(exc, drf.NotFound):
        return NotFound("The requested resource does not exist.")
    if isinstance(exc, drf.MethodNotAllowed):
        return ApplicationError(
            str(exc.detail),
            status=405,
            code="method_not_allowed",
            title="Method not allowed",
        )
    if isinstance(exc, drf.NotAcceptable):
        return ApplicationError(
            str(exc.detail), status=406, code="not_acceptable", title="Not acceptable"
        )
    if isinstance(exc, drf.UnsupportedMediaType):
        return UnsupportedMediaType(str(exc.detail))
    if isinstance(exc, drf.Throttled):
        return rate_limited(getattr(exc, "wait", None) or 1)
    return ApplicationError(
        str(exc.detail), status=exc.status_code, code="error", title="Error"
    )


def rate_limited(wait_s: float) -> RateLimited:
    """429 with ``Retry-After``: the key's window has ``wait_s`` seconds left."""
    wait = max(1, round(wait_s))
    return RateLimited(
        f"Rate limit exceeded; retry in {wait} s.", headers={"Retry-After": str(wait)}
    )


def internal_error() -> ApplicationError:
    """What a client sees of an unexpected exception: its request id, nothing more."""
    return ApplicationError(
        "An unexpected error occurred; the request id identifies it in our logs.",
        status=500,
        code="internal_error",
        title="Internal server error",
    )


def to_application_error(exc: BaseException) -> ApplicationError | None:
    """Map any exception the API can meet to an ApplicationError (None: unexpected)."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, Http404):
        return NotFound("The requested resource does not exist.")
    if isinstance(exc, DjangoPermissionDenied):
        return Forbidden()
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge("The request body is larger than this endpoint accepts.")
    if isinstance(exc, drf.APIException):
        return _from_drf(exc)
    if _database_unavailable(exc):
        logger.warning("Database unavailable: %s", type(exc).__name__)
        return ServiceUnavailable(
            "The database is not answering right now; retry shortly.",
            code="database_unavailable",
            headers={"Retry-After": "1"},
        )
    return None


def _database_unavailable(exc: BaseException) -> bool:
    """The database went away or refused a connection (a restart, a full pool), as
    opposed to a query's own error: the request may simply be retried."""
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__ or exc
    name = type(cause).__name__
    text = str(exc).lower()
    return name in {"PoolTimeout", "ConnectionTimeout"} or any(
        marker in text
        for marker in (
            "connection",
            "server closed",
            "terminating",
            "too many clients",
            "the database system is",
            "could not connect",
        )
    )


def problem_response(error: ApplicationError, request: HttpRequest | None) -> Response:
    body = problem_body(
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        param=error.param,
        request_id=request_id_of(request),
        extra=error.extra,
    )
    response = Response(body, status=error.status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in error.headers.items():
        response[name] = value
    response.problem = True  # type: ignore[attr-defined]
    return response


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF exception handler: every error becomes problem details."""
    request = context.get("request")
    django_request = getattr(request, "_request", request)
    error = to_application_error(exc)
    if error is None:
        logger.exception(
            "Unhandled error in %s", context.get("view").__class__.__name__
        )
        error = internal_error()
    return problem_response(error, django_request)
