"""Recordings: the environment's list (filters, waveforms, players) and the audio itself."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from config.api.pagination import decode_cursor, encode_cursor
from config.errors import InvalidRequest, NotFound
from dashboard.views.pages import page
from dashboard.workspace import Workspace, dashboard_view
from recordings import selectors
from recordings.models import Recording, RecordingKind

RECORDINGS_PER_PAGE = 25


class RecordingFilterForm(forms.Form):
    call = forms.UUIDField(
        label="Call id",
        required=False,
        error_messages={"invalid": "Give a call id as shown on the call's page."},
        widget=forms.TextInput(attrs={"placeholder": "0197a5c1-…", "size": 38}),
    )
    kind = forms.ChoiceField(
        label="Track",
        choices=[("", "Any track"), *RecordingKind.choices],
        required=False,
    )
    created_after = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    created_before = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        after, before = cleaned.get("created_after"), cleaned.get("created_before")
        if after and before and after > before:
            raise forms.ValidationError("“From” must be on or before “To”.")
        return cleaned


def _recordings_page(
    ws: Workspace, form: RecordingFilterForm, cursor: str
) -> tuple[list[Recording], str | None]:
    """A page of the filtered recordings, newest first, and the cursor of the next."""
    if form.is_bound and not form.is_valid():
        return [], None
    data = form.cleaned_data if form.is_bound else {}
    call = None
    if data.get("call"):
        try:
            call = selectors.call_get(ws.environment, data["call"])
        except NotFound:
            form.add_error("call", "No call with this id in this environment.")
            return [], None
    recordings = selectors.recording_list(
        ws.environment, call=call, kind=data.get("kind") or None
    )
    # Dates are whole UTC days, both included.
    if data.get("created_after"):
        start = datetime.combine(data["created_after"], time.min, tzinfo=UTC)
        recordings = recordings.filter(created_at__gte=start)
    if data.get("created_before"):
        end = datetime.combine(data["created_before"], time.min, tzinfo=UTC)
        recordings = recordings.filter(created_at__lt=end + timedelta(days=1))
    # A cursor this page did not write starts from the newest.
    if cursor:
        with contextlib.suppress(InvalidRequest):
            recordings = recordings.filter(pk__lt=decode_cursor(cursor))
    rows = list(recordings.order_by("-pk")[: RECORDINGS_PER_PAGE + 1])
    older = None
    if len(rows) > RECORDINGS_PER_PAGE:
        rows = rows[:RECORDINGS_PER_PAGE]
        older = encode_cursor(rows[-1].pk)
    return rows, older


@require_GET
@dashboard_view()
def recording_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = RecordingFilterForm(request.GET or None)
    cursor = request.GET.get("older", "")
    recordings, older = _recordings_page(ws, form, cursor)
    query = request.GET.copy()
    query.pop("older", None)
    return page(
        request,
        ws,
        "dashboard/recordings.html",
        {
            "filter_form": form,
            "recordings": recordings,
            "query": query.urlencode(),
            "older": older,
            "paged": bool(cursor),
        },
        section="recordings",
    )


@require_GET
@dashboard_view()
def recording_audio(
    request: HttpRequest, ws: Workspace, recording_id: str
) -> HttpResponseBase:
    """The WAV (or a redirect to a short-lived signed URL where storage offers one)."""
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
