"""A Content-Security-Policy for the pages people open in a browser.

The dashboard serves every script and stylesheet itself (no inline code, no CDN), so its
policy allows only this origin: its own scripts, images, audio worklets and media, and its
WebSocket and EventSource connections back here. Styles also come from this origin;
``style`` attributes are allowed (htmx's history snapshots and the admin's widgets carry
them; they cannot run code). Nothing may frame either page. The API answers JSON and is
left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

DASHBOARD = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "worker-src 'self' blob:",
        "connect-src 'self' ws: wss:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
POLICIES = (("/dashboard/", DASHBOARD), ("/admin/", DASHBOARD))


def _with_policy(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    for prefix, policy in POLICIES:
        if request.path.startswith(prefix):
            response.headers.setdefault("Content-Security-Policy", policy)
            break
    return response


@sync_and_async_middleware
def content_security_policy(get_response: Callable[..., Any]) -> Callable[..., Any]:
    """Sync or async as the stack around it is, so it never costs a thread hop."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            return _with_policy(request, await get_response(request))

    else:

        def middleware(request: HttpRequest) -> HttpResponse:  # type: ignore[misc]
            return _with_policy(request, get_response(request))

    return middleware
