"""Logging in and out, and choosing the account environment the dashboard shows."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from config.errors import NotFound
from dashboard.workspace import back_url, workspace_choose

login = auth_views.LoginView.as_view(
    template_name="dashboard/login.html",
    redirect_authenticated_user=True,
    next_page=reverse_lazy("dashboard:overview"),
)
logout = auth_views.LogoutView.as_view(next_page=reverse_lazy("dashboard:login"))


@require_POST
def switch(request: HttpRequest) -> HttpResponse:
    """Show another environment (of any account the user belongs to)."""
    if not request.user.is_authenticated:
        return redirect("dashboard:login")
    try:
        workspace = workspace_choose(request, request.POST.get("environment"))
    except NotFound as missing:
        raise Http404(missing.detail) from missing
    messages.info(
        request,
        f"Now showing {workspace.account.name} · {workspace.environment.get_kind_display()}.",
    )
    return redirect(back_url(request))
