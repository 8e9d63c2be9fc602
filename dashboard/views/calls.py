"""Calls: the searched and filtered list, a call's detail (timeline, recordings, streams),
end, mute, play."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from assets import services as asset_services
from calls import selectors as call_selectors
from calls.models import Call, CallState
from calls.runtime import control
from calls.snapshots import call_snapshot
from config.errors import ApplicationError, Conflict
from dashboard import extras, selectors
from dashboard.forms import CallSearchForm, MuteForm, PlayForm
from dashboard.views.pages import fragment, page
from dashboard.workspace import Workspace, dashboard_view, first_error, wants_json
from events import selectors as event_selectors


def _call_page(request: HttpRequest, ws: Workspace) -> dict[str, Any]:
    form = CallSearchForm(request.GET or None)
    cursor = request.GET.get("cursor") or None
    found = selectors.call_search(
        ws.environment, filters=form.filters(), text=form.text(), cursor=cursor
    )
    return {
        "filter_form": form,
        "calls": found.items,
        "older": found.older,
        "cursor": cursor,
        # The search and filters, for the links to other pages of the same list.
        "query": _query_without_cursor(request),
    }


def _query_without_cursor(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("cursor", None)
    for name in [name for name, value in query.items() if not value]:
        query.pop(name)
    return query.urlencode()


@require_GET
@dashboard_view()
def call_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return page(
        request, ws, "dashboard/calls.html", _call_page(request, ws), section="calls"
    )


@require_GET
@dashboard_view()
def call_rows(request: HttpRequest, ws: Workspace) -> HttpResponse:
    """The list's rows, swapped in when a call changes state."""
    return fragment(
        request, ws, "dashboard/partials/call_rows.html", _call_page(request, ws)
    )


def _call(ws: Workspace, session_id: str, call_id: str) -> Call:
    session = call_selectors.session_get(ws.environment, session_id)
    return call_selectors.call_get(ws.environment, session, call_id)


def _detail_context(ws: Workspace, call: Call) -> dict[str, Any]:
    context: dict[str, Any] = {
        "call": call,
        "timeline": event_selectors.call_timeline(ws.environment, str(call.public_id)),
        "recordings": extras.recordings_of(ws.environment, call),
        "streams": extras.streams_of(ws.environment, call),
    }
    if call.state == CallState.ACTIVE and ws.can_manage:
        context["play_assets"] = extras.ready_assets(ws.environment)
        context["play_form"] = PlayForm()
    return context


@require_GET
@dashboard_view()
def call_detail(
    request: HttpRequest, ws: Workspace, session_id: str, call_id: str
) -> HttpResponse:
    call = _call(ws, session_id, call_id)
    return page(
        request,
        ws,
        "dashboard/call_detail.html",
        _detail_context(ws, call),
        section="calls",
    )


@require_GET
@dashboard_view()
def call_panel(
    request: HttpRequest, ws: Workspace, session_id: str, call_id: str
) -> HttpResponse:
    """Snapshot, timeline and recordings, swapped in when the call changes."""
    return fragment(
        request,
        ws,
        "dashboard/partials/call_panel.html",
        _detail_context(ws, _call(ws, session_id, call_id)),
    )


@require_GET
@dashboard_view()
def call_levels(
    request: HttpRequest, ws: Workspace, session_id: str, call_id: str
) -> HttpResponse:
    """A live call's input and output levels since the page last asked (it polls while
    the call is live), and whether a socket or streams are attached."""
    call = _call(ws, session_id, call_id)
    if not call.is_live:
        return JsonResponse({"live": False})
    try:
        levels = control.run_command(call, "levels")
    except ApplicationError:  # ended meanwhile, or its process is gone
        return JsonResponse({"live": False})
    return JsonResponse({"live": True, **levels})


def _done(
    request: HttpRequest, call: Call, reply: dict[str, Any], note: str
) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"call": reply})
    messages.success(request, note)
    return redirect(
        "dashboard:call", session_id=call.session.public_id, call_id=call.public_id
    )


@require_POST
@dashboard_view(manage=True)
def call_end(
    request: HttpRequest, ws: Workspace, session_id: str, call_id: str
) -> HttpResponse:
    call = _call(ws, session_id, call_id)
    if call.state == CallState.ENDED:
        return _done(request, call, call_snapshot(call), "The call had already ended.")
    return _done(request, call, control.call_end(call), "Call ended.")


@require_POST
@dashboard_view(manage=True)
def call_mute(
    request: HttpRequest, ws: Workspace, session_id: str, call_id: str
) -> HttpResponse:
    call = _call(ws, session_id, call_id)
    form = MuteForm(request.POST)
    muted = form.is_valid() and form.cleaned_data["muted"]
    if call.state == CallState.ENDED:
        raise Conflict("The call has ended.", code="call_not_active")
    reply = control.call_mute(call, muted=muted)
    return _done(
        request,
        call,
        reply,
        "Muted: the peer hears silence." if muted else "Unmuted.",
    )


@require_POST
@dashboard_view(manage=True)
def call_play(
    request: HttpRequest, ws: Workspace, session_id: str, call_id: str
) -> HttpResponse:
    """Play a ready asset into a live call."""
    call = _call(ws, session_id, call_id)
    form = PlayForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect(
            "dashboard:call", session_id=call.session.public_id, call_id=call.public_id
        )
    playback = asset_services.playback_start(
        environment=ws.environment,
        call=call,
        asset_id=str(form.cleaned_data["asset"]),
        mode=form.cleaned_data["mode"],
    )
    return _done(request, call, playback, "Playing into the call.")
