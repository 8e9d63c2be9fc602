"""Audio assets: upload (with progress, from the page's script), status, listen, delete."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from dashboard.forms import AssetUploadForm
from dashboard.views.pages import fragment, page
from dashboard.workspace import Workspace, dashboard_view, first_error, wants_json


def _assets(ws: Workspace) -> list:
    from assets import selectors

    return list(selectors.asset_list(ws.environment)[:200])


@require_GET
@dashboard_view()
def asset_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return page(
        request,
        ws,
        "dashboard/assets.html",
        {
            "assets": _assets(ws),
            "form": AssetUploadForm(),
            "max_mib": settings.ASSET_MAX_UPLOAD_BYTES // 2**20,
        },
        section="assets",
    )


@require_GET
@dashboard_view()
def asset_rows(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return fragment(
        request, ws, "dashboard/partials/asset_rows.html", {"assets": _assets(ws)}
    )


# The CSRF check reads the body; the bounded upload handler must be in place first.
@csrf_exempt
@require_POST
@dashboard_view(manage=True)
def asset_upload(request: HttpRequest, ws: Workspace) -> HttpResponse:
    from assets.uploads import AssetUploadHandler, check_declared_length

    limit = settings.ASSET_MAX_UPLOAD_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    check_declared_length(declared, limit)
    request.upload_handlers = [AssetUploadHandler(request, max_bytes=limit)]
    return _asset_upload(request, ws)


@csrf_protect
def _asset_upload(request: HttpRequest, ws: Workspace) -> HttpResponse:
    from assets import services
    from assets.services import asset_data

    form = AssetUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        detail = first_error(form)
        if wants_json(request):
            return JsonResponse(
                {"error": {"code": "validation_error", "detail": detail}}, status=400
            )
        messages.error(request, detail)
        return redirect("dashboard:assets")
    asset = services.asset_create(
        environment=ws.environment, upload=form.cleaned_data["audio"]
    )
    asset.refresh_from_db()
    if wants_json(request):
        return JsonResponse({"asset": asset_data(asset)}, status=201)
    messages.success(request, f"Uploaded “{asset.filename}”; decoding it now.")
    return redirect("dashboard:assets")


@require_GET
@dashboard_view()
def asset_audio(request: HttpRequest, ws: Workspace, asset_id: str) -> HttpResponseBase:
    """The decoded audio (16 kHz mono WAV), for the page's player."""
    from assets import selectors
    from assets.models import AssetStatus

    asset = selectors.asset_get(ws.environment, asset_id)
    if asset.status != AssetStatus.READY or not asset.audio_name:
        raise Http404("The asset has no playable audio yet.")
    return FileResponse(
        default_storage.open(asset.audio_name, "rb"),
        content_type="audio/wav",
        filename=f"{asset.public_id}.wav",
        as_attachment="download" in request.GET,
    )


@require_POST
@dashboard_view(manage=True)
def asset_delete(request: HttpRequest, ws: Workspace, asset_id: str) -> HttpResponse:
    from assets import selectors, services

    asset = services.asset_delete(asset=selectors.asset_get(ws.environment, asset_id))
    messages.success(request, f"Deleted “{asset.filename}”.")
    return redirect("dashboard:assets")
