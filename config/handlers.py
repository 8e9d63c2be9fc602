"""Django's ASGI handler, serving a request's middleware and sync view in one hop to a
pooled thread.

Under ASGI Django builds an async middleware chain: each ``MiddlewareMixin`` middleware
(security, sessions, CSRF, auth, messages…) runs its ``process_request`` and
``process_response`` through ``sync_to_async``, two thread hops each, about fifteen per
API request, on a thread created for that request (which opens its own database
connection). Together they cost more CPU than the view.

Here the chain is built in sync mode and run, whole, on one of ``API_THREADS`` threads
kept for requests (their database connections are reused between requests and closed
or recycled before and after each, as Django's request signals do). An async view (the
SSE streams) runs on the server's loop through ``async_to_sync`` from that thread, and
a streamed response is sent from the loop. The pool is the process's own, apart from
the loop's default executor, so requests that wait for the media engine can never
starve the engine's own database calls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import SyncToAsync
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponseBase


@functools.cache
def request_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=settings.API_THREADS, thread_name_prefix="request"
    )


def _with_fresh_connections(
    chain: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[[HttpRequest], HttpResponseBase]:
    def serve(request: HttpRequest) -> HttpResponseBase:
        close_old_connections()
        try:
            return chain(request)
        finally:
            close_old_connections()

    return serve


class OneHopASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain: Any = SyncToAsync(
            _with_fresh_connections(self._middleware_chain),
            thread_sensitive=False,
            executor=request_threads(),
        )


def get_asgi_application() -> OneHopASGIHandler:
    """``django.core.asgi.get_asgi_application`` with the one-hop handler."""
    import django

    django.setup(set_prefix=False)
    return OneHopASGIHandler()
