"""X-Request-Id on every response, and problem details for API errors outside DRF."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from config.ids import uuid7_str

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _assign(request: HttpRequest) -> str:
    incoming = request.headers.get("X-Request-Id", "")
    request_id = (
        incoming if _SAFE_ID.match(incoming) else "req_" + uuid7_str().replace("-", "")
    )
    request.request_id = request_id  # type: ignore[attr-defined]
    return request_id


class RequestIdMiddleware:
    """Give every request an id (the client's, if sane) and echo it in ``X-Request-Id``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        request_id = _assign(request)
        response: HttpResponse = self.get_response(request)
        response["X-Request-Id"] = request_id
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        request_id = _assign(request)
        response: HttpResponse = await self.get_response(request)
        response["X-Request-Id"] = request_id
        return response
