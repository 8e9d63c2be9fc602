"""The SDK's exceptions: one for API problems, one for webhook signatures, one for
a media socket that went away."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SwitchboardError(Exception):
    """An API request failed: the RFC 9457 problem details Switchboard answered with.

    ``status`` is the HTTP status, ``code`` the stable snake_case machine code
    (``not_found``, ``validation_error``, ``session_not_ready``…), ``param`` the field
    at fault when there is one, ``request_id`` the id to quote to an operator.
    ``errors`` lists every field problem of a validation error. ``body`` is the whole
    problem document (extra members such as ``acceptedFormats`` included).
    """

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        param: str | None = None,
        request_id: str | None = None,
        type: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.param = param
        self.request_id = request_id
        self.type = type
        self.errors = errors or []
        self.retry_after = retry_after
        self.body: dict[str, Any] = dict(body or {})

    @classmethod
    def from_problem(
        cls,
        status: int,
        problem: Mapping[str, Any],
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> SwitchboardError:
        """Build the error from a problem-details document."""
        errors = problem.get("errors")
        return cls(
            int(problem.get("status") or status),
            str(problem.get("code") or "http_error"),
            str(problem.get("title") or ""),
            str(problem.get("detail") or ""),
            param=problem.get("param"),
            request_id=problem.get("requestId") or request_id,
            type=problem.get("type"),
            errors=errors if isinstance(errors, list) else None,
            retry_after=retry_after,
            body=problem,
        )

    def __repr__(self) -> str:
        return (
            f"SwitchboardError(status={self.status}, code={self.code!r}, "
            f"param={self.param!r}, request_id={self.request_id!r})"
        )


class WebhookVerificationError(Exception):
    """A webhook delivery's signature, timestamp or body did not verify."""


class MediaSocketClosed(Exception):
    """The live media socket closed while the SDK was sending on it.

    ``code`` is the WebSocket close code (1000 after the call ended, 4409 when
    another socket replaced this one), ``reason`` its reason if any.
    """

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(
            f"media socket closed ({code}{': ' + reason if reason else ''})"
        )
        self.code = code
        self.reason = reason
