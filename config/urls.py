from __future__ import annotations

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from calls.api.whatsapp import whatsapp_webhook
from config.api.errors import problem_body, request_id_of
from config.health import healthz, metrics, readyz

api_v1: list[URLPattern | URLResolver] = [
    path("", include("accounts.api.urls")),
    path("", include("calls.api.urls")),
    path("", include("events.api.urls")),
    path("", include("assets.api.urls")),
    path("", include("recordings.api.urls")),
    path("", include("streams.api.urls")),
    path(
        "schema",
        SpectacularAPIView.as_view(
            authentication_classes=[], permission_classes=[AllowAny]
        ),
        name="schema",
    ),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path(
        "api/docs",
        SpectacularSwaggerView.as_view(
            url_name="schema", authentication_classes=[], permission_classes=[AllowAny]
        ),
        name="api-docs",
    ),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    # Twilio-compatible REST (hang-up) for bots that speak the `twilio` stream dialect.
    path("twilio/", include("streams.api.twilio_urls")),
    path("dashboard/", include("dashboard.urls")),
    # Meta calls this with a WhatsApp session's call events (DESIGN §11.2).
    path(
        "carriers/whatsapp/<uuid:session_id>/webhook",
        whatsapp_webhook,
        name="whatsapp-webhook",
    ),
    path("", RedirectView.as_view(pattern_name="dashboard:overview"), name="home"),
]

admin.site.site_header = "Switchboard staff"
admin.site.site_title = "Switchboard"


def _api_problem(
    request: HttpRequest, status: int, code: str, title: str, detail: str
) -> JsonResponse:
    return JsonResponse(
        problem_body(
            status=status,
            code=code,
            title=title,
            detail=detail,
            request_id=request_id_of(request),
        ),
        status=status,
        content_type="application/problem+json",
    )


def handler404(
    request: HttpRequest, exception: Exception | None = None
) -> HttpResponse:
    if request.path.startswith("/api/"):
        return _api_problem(request, 404, "not_found", "Not found", "No such endpoint.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Http404())


def handler500(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return _api_problem(
            request,
            500,
            "internal_error",
            "Internal server error",
            "An unexpected error occurred; the request id identifies it in our logs.",
        )
    from django.views.defaults import server_error

    return server_error(request)
