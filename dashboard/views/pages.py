"""Rendering helpers every dashboard page shares."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard import selectors
from dashboard.workspace import Workspace

NAV = [
    ("overview", "Overview", "dashboard:overview"),
    ("sessions", "Sessions", "dashboard:sessions"),
    ("calls", "Calls", "dashboard:calls"),
    ("recordings", "Recordings", "dashboard:recordings"),
    ("usage", "Usage", "dashboard:usage"),
    ("console", "Call console", "dashboard:console"),
    ("assets", "Audio assets", "dashboard:assets"),
    ("keys", "API keys", "dashboard:keys"),
    ("webhooks", "Webhooks", "dashboard:webhooks"),
    ("team", "Team", "dashboard:team"),
    ("settings", "Settings", "dashboard:settings"),
]


def page(
    request: HttpRequest,
    workspace: Workspace,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    section: str,
    status: int = 200,
) -> HttpResponse:
    """Render a full dashboard page: navigation, switcher and the section's content."""
    base = {
        "ws": workspace,
        # The page's event stream starts after the newest event this render could see.
        "latest_event_id": selectors.latest_event_id(workspace.environment),
        "section": section,
        "nav": NAV,
        "switcher": selectors.switcher_choices(request.user),
    }
    return render(request, template, {**base, **(context or {})}, status=status)


def fragment(
    request: HttpRequest,
    workspace: Workspace,
    template: str,
    context: dict[str, Any] | None = None,
) -> HttpResponse:
    """Render a piece of a page that live updates swap in."""
    return render(request, template, {"ws": workspace, **(context or {})})
