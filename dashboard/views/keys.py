"""API keys: create (the secret is shown once, on the response that made it), revoke."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors as account_selectors
from accounts import services as account_services
from dashboard.forms import ApiKeyCreateForm
from dashboard.views.pages import page
from dashboard.workspace import Workspace, dashboard_view


@never_cache
@require_http_methods(["GET", "POST"])
@dashboard_view()
def key_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = ApiKeyCreateForm()
    issued = None
    if request.method == "POST":
        if not ws.can_manage:
            raise PermissionDenied("Only owners and admins can create API keys.")
        form = ApiKeyCreateForm(request.POST)
        if form.is_valid():
            # Rendered here and never stored: the secret exists only in this response.
            issued = account_services.api_key_issue(
                environment=ws.environment, name=form.cleaned_data["name"]
            )
            form = ApiKeyCreateForm()
    return page(
        request,
        ws,
        "dashboard/keys.html",
        {
            "keys": account_selectors.api_key_list(ws.environment),
            "form": form,
            "issued": issued,
        },
        section="keys",
        status=400 if form.errors else 200,
    )


@require_POST
@dashboard_view(manage=True)
def key_revoke(request: HttpRequest, ws: Workspace, key_id: str) -> HttpResponse:
    api_key = account_services.api_key_revoke(
        api_key=account_selectors.api_key_get(ws.environment, key_id)
    )
    messages.success(
        request,
        f"Key “{api_key.name}” ({api_key.display_prefix}…{api_key.last4}) revoked; "
        "requests that present it are refused from now on.",
    )
    return redirect("dashboard:keys")
