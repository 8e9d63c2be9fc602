"""The dashboard's live updates: the environment's event stream, over the login session.

The same Server-Sent Events the API serves at ``GET /events`` (``events.sse``), but
authenticated by the dashboard's login session and scoped to the environment chosen in
it. The page's script turns each event into htmx triggers that refresh the parts of the
page it changes; nothing polls.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from dashboard.workspace import Workspace, workspace_of
from events import sse


def _workspace(request: HttpRequest) -> Workspace | None:
    if not request.user.is_authenticated:
        return None
    return workspace_of(request)


@require_GET
async def event_stream(request: HttpRequest) -> HttpResponseBase:
    """The chosen environment's events after ``Last-Event-ID`` (or ``?lastEventId=``), then live."""
    workspace = await sync_to_async(_workspace)(request)
    if workspace is None:
        return HttpResponse(
            "Log in to the dashboard first.", status=401, content_type="text/plain"
        )
    # A reconnecting EventSource sends the header; a page's first connection names the
    # newest event it rendered, so nothing between the render and the connection is lost.
    last_event_id = request.headers.get("Last-Event-ID") or request.GET.get(
        "lastEventId"
    )
    return sse.stream_response(
        sse.event_stream(workspace.environment, None, last_event_id or None)
    )
