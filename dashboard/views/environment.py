"""Environment settings: recording retention and whether calls are recorded."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from accounts import services as account_services
from dashboard.forms import EnvironmentSettingsForm
from dashboard.views.pages import page
from dashboard.workspace import Workspace, dashboard_view


@require_http_methods(["GET", "POST"])
@dashboard_view()
def environment_settings(request: HttpRequest, ws: Workspace) -> HttpResponse:
    environment = ws.environment
    form = EnvironmentSettingsForm(
        initial={
            "recording_retention_days": environment.recording_retention_days,
            "record_calls": environment.record_calls,
        }
    )
    if request.method == "POST":
        if not ws.can_manage:
            raise PermissionDenied("Only owners and admins can change settings.")
        form = EnvironmentSettingsForm(request.POST)
        if form.is_valid():
            account_services.environment_update(
                environment=environment, **form.cleaned_data
            )
            messages.success(
                request,
                "Settings saved. A new retention applies to recordings made from now on.",
            )
            return redirect("dashboard:settings")
    if not ws.can_manage:
        for field in form.fields.values():
            field.disabled = True
    return page(
        request,
        ws,
        "dashboard/settings.html",
        {"form": form},
        section="settings",
        status=400 if form.errors else 200,
    )
