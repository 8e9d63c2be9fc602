"""The overview: live calls now, calls today, recent events."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from dashboard import selectors
from dashboard.views.pages import fragment, page
from dashboard.workspace import Workspace, dashboard_view


@require_GET
@dashboard_view()
def overview(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return page(
        request,
        ws,
        "dashboard/overview.html",
        {
            "stats": selectors.overview(ws.environment),
            "events": selectors.recent_events(ws.environment),
        },
        section="overview",
    )


@require_GET
@dashboard_view()
def overview_stats(request: HttpRequest, ws: Workspace) -> HttpResponse:
    """The counters and live calls, swapped in when a call or a line changes."""
    return fragment(
        request,
        ws,
        "dashboard/partials/overview_stats.html",
        {"stats": selectors.overview(ws.environment)},
    )
