"""Webhooks: create (the secret is shown once), edit, rotate the secret, the delivery log
(by status, page by page), retry a delivery, delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from config.errors import InvalidRequest
from dashboard import selectors as dashboard_selectors
from dashboard.forms import DeliveryFilterForm, WebhookEditForm, WebhookForm
from dashboard.views.pages import page
from dashboard.workspace import Workspace, dashboard_view


def _apply(form: WebhookForm, error: InvalidRequest) -> None:
    """Show a refusal of the webhook services on the field it names."""
    field = (error.param or "").split("[")[0]
    form.add_error(field if field in form.fields else None, error.detail)


@never_cache
@require_http_methods(["GET", "POST"])
@dashboard_view()
def webhook_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    from events import selectors, services

    form = WebhookForm()
    created = None
    if request.method == "POST":
        if not ws.can_manage:
            raise PermissionDenied("Only owners and admins can add webhooks.")
        form = WebhookForm(request.POST)
        if form.is_valid():
            try:
                created = services.webhook_create(
                    environment=ws.environment, **form.cleaned_data
                )
            except InvalidRequest as refused:
                _apply(form, refused)
            else:
                form = WebhookForm()
    return page(
        request,
        ws,
        "dashboard/webhooks.html",
        {
            "webhooks": selectors.webhook_list(ws.environment),
            "form": form,
            "created": created,
        },
        section="webhooks",
        status=400 if form.errors else 200,
    )


def _detail(
    request: HttpRequest,
    ws: Workspace,
    endpoint: Any,
    form: WebhookEditForm,
    *,
    secret: str | None = None,
    status: int = 200,
) -> HttpResponse:
    shown = DeliveryFilterForm(request.GET or None)
    cursor = request.GET.get("cursor") or None
    deliveries = dashboard_selectors.delivery_page(
        ws.environment, endpoint, status=shown.chosen_status(), cursor=cursor
    )
    return page(
        request,
        ws,
        "dashboard/webhook_detail.html",
        {
            "webhook": endpoint,
            "form": form,
            "secret": secret,
            "delivery_form": shown,
            "deliveries": deliveries.items,
            "older": deliveries.older,
            "cursor": cursor,
            "status": shown.chosen_status() or "",
        },
        section="webhooks",
        status=status,
    )


@never_cache
@require_http_methods(["GET", "POST"])
@dashboard_view()
def webhook_detail(
    request: HttpRequest, ws: Workspace, webhook_id: str
) -> HttpResponse:
    from events import selectors, services

    endpoint = selectors.webhook_get(ws.environment, webhook_id)
    form = WebhookEditForm(
        initial={
            "url": endpoint.url,
            "events": endpoint.events,
            "description": endpoint.description,
            "enabled": endpoint.enabled,
        }
    )
    if request.method == "POST":
        if not ws.can_manage:
            raise PermissionDenied("Only owners and admins can change webhooks.")
        form = WebhookEditForm(request.POST)
        if form.is_valid():
            try:
                services.webhook_update(endpoint=endpoint, **form.cleaned_data)
            except InvalidRequest as refused:
                _apply(form, refused)
                endpoint.refresh_from_db()
            else:
                messages.success(request, "Webhook saved.")
                return redirect("dashboard:webhook", webhook_id=endpoint.public_id)
    if not ws.can_manage:
        for field in form.fields.values():
            field.disabled = True
    return _detail(request, ws, endpoint, form, status=400 if form.errors else 200)


@never_cache
@require_POST
@dashboard_view(manage=True)
def webhook_rotate_secret(
    request: HttpRequest, ws: Workspace, webhook_id: str
) -> HttpResponse:
    """A new signing secret, shown once; the old one keeps signing during the overlap."""
    from events import selectors, services

    rotated = services.webhook_rotate_secret(
        endpoint=selectors.webhook_get(ws.environment, webhook_id)
    )
    endpoint = rotated.endpoint
    form = WebhookEditForm(
        initial={
            "url": endpoint.url,
            "events": endpoint.events,
            "description": endpoint.description,
            "enabled": endpoint.enabled,
        }
    )
    return _detail(request, ws, endpoint, form, secret=rotated.secret)


@require_POST
@dashboard_view(manage=True)
def webhook_delete(
    request: HttpRequest, ws: Workspace, webhook_id: str
) -> HttpResponse:
    from events import selectors, services

    endpoint = services.webhook_delete(
        endpoint=selectors.webhook_get(ws.environment, webhook_id)
    )
    messages.success(request, f"Webhook {endpoint.url} deleted.")
    return redirect("dashboard:webhooks")


@require_POST
@dashboard_view(manage=True)
def delivery_retry(
    request: HttpRequest, ws: Workspace, webhook_id: str, delivery_id: str
) -> HttpResponse:
    from events import selectors, services

    endpoint = selectors.webhook_get(ws.environment, webhook_id)
    services.delivery_retry(
        delivery=selectors.delivery_get(ws.environment, endpoint, delivery_id)
    )
    messages.success(request, "Sending the delivery again now.")
    return redirect("dashboard:webhook", webhook_id=endpoint.public_id)
