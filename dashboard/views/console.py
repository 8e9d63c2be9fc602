"""The call console: place a call and talk through the browser over the media socket."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from calls import selectors as call_selectors
from calls.models import Call
from calls.runtime import control
from calls.snapshots import call_snapshot
from config.errors import ApplicationError, InvalidRequest
from dashboard import extras, selectors
from dashboard.forms import ConsoleCallForm, simulator_address
from dashboard.views.pages import page
from dashboard.workspace import Workspace, dashboard_view

ECHO_NUMBER = "+1 555 000 0001"


def console_call_data(call: Call) -> dict[str, Any]:
    """What the console's script needs to attach to a call."""
    ids = {"session_id": call.session.public_id, "call_id": call.public_id}
    return {
        "call": call_snapshot(call),
        "mediaPath": f"/api/v1/sessions/{ids['session_id']}/calls/{ids['call_id']}/media",
        "detailUrl": reverse("dashboard:call", kwargs=ids),
        "muteUrl": reverse("dashboard:call-mute", kwargs=ids),
        "endUrl": reverse("dashboard:call-end", kwargs=ids),
        "playUrl": reverse("dashboard:call-play", kwargs=ids),
    }


@require_GET
@dashboard_view()
def console(request: HttpRequest, ws: Workspace) -> HttpResponse:
    sessions = list(selectors.ready_sessions(ws.environment))
    join = None
    if request.GET.get("session") and request.GET.get("call"):
        session = call_selectors.session_get(ws.environment, request.GET["session"])
        call = call_selectors.call_get(ws.environment, session, request.GET["call"])
        if call.is_live:
            join = console_call_data(call)
    return page(
        request,
        ws,
        "dashboard/console.html",
        {
            "sessions": sessions,
            "form": ConsoleCallForm(
                initial={"to": ECHO_NUMBER, "record": ws.environment.record_calls}
            ),
            "join": join,
            "assets": extras.ready_assets(ws.environment),
        },
        section="console",
    )


@require_POST
@dashboard_view(manage=True)
def console_call(request: HttpRequest, ws: Workspace) -> HttpResponse:
    """Place a call from one of the environment's lines; the script then opens its media."""
    form = ConsoleCallForm(request.POST)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        return JsonResponse(
            {
                "error": {
                    "code": "validation_error",
                    "param": field,
                    "detail": errors[0],
                }
            },
            status=400,
        )
    session = call_selectors.session_get(ws.environment, form.cleaned_data["session"])
    to = form.cleaned_data["to"]
    try:
        if session.carrier == "simulator":
            to = simulator_address(to)
        call = control.call_place(
            session=session, to=to, record=form.cleaned_data["record"]
        ).call
    except InvalidRequest as refused:
        # Each carrier says what a valid number is; shown on the form's field.
        return JsonResponse(
            {
                "error": {
                    "code": refused.code,
                    "param": refused.param or "to",
                    "detail": refused.detail,
                }
            },
            status=400,
        )
    return JsonResponse(console_call_data(call), status=201)


@require_POST
@dashboard_view(manage=True)
def console_hang_up(request: HttpRequest, ws: Workspace) -> HttpResponse:
    """End the call a console placed as its page closes (a beacon: nobody reads the
    answer, so a refusal is only a status, never a message for the next page)."""
    session = call_selectors.session_get(ws.environment, request.POST.get("session"))
    call = call_selectors.call_get(ws.environment, session, request.POST.get("call"))
    if call.is_live:
        try:
            control.call_end(call)
        except ApplicationError as refused:
            return HttpResponse(status=refused.status)
    return HttpResponse(status=204)
