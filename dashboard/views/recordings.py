"""A call's recordings, for the call page's players and download links."""

from __future__ import annotations

from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponseRedirect,
)
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from dashboard.workspace import Workspace, dashboard_view


@require_GET
@dashboard_view()
def recording_audio(
    request: HttpRequest, ws: Workspace, recording_id: str
) -> HttpResponseBase:
    """The WAV (or a redirect to a short-lived signed URL where storage offers one)."""
    from recordings import selectors

    recording = selectors.recording_get(ws.environment, recording_id)
    location = selectors.recording_audio_location(recording)
    if location.url is not None:
        return HttpResponseRedirect(location.url)
    assert location.path is not None
    return FileResponse(
        open(location.path, "rb"),  # FileResponse closes it
        content_type=recording.content_type,
        as_attachment="download" in request.GET,
        filename=f"{recording.call.public_id}-{recording.kind}.wav",
    )
