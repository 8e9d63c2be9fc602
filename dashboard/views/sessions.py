"""Sessions: create, connect and pair (QR or code), disconnect, log out, delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from calls import selectors as call_selectors
from calls import services
from calls.carriers.simulator import helpers as simulator_helpers
from calls.models import ConnectionState, Session
from calls.runtime import control
from dashboard.forms import PairingCodeForm, SessionCreateForm
from dashboard.qr import qr_data_uri
from dashboard.views.pages import fragment, page
from dashboard.workspace import Workspace, dashboard_view, first_error

RECENT_CALLS_SHOWN = 10


def _panel_context(ws: Workspace, session: Session) -> dict[str, Any]:
    """A session's state, with a fresh QR image while it is pairing."""
    qr: dict[str, Any] | None = None
    pairs = services.carrier_of(session).pairs
    if (
        pairs
        and session.connection_state == ConnectionState.CONNECTING
        and not session.paired
    ):
        current = services.session_current_qr(session=session)
        session.refresh_from_db()
        qr = {
            "image": qr_data_uri(current["qr"]),
            "created_at": parse_datetime(current["createdAt"]),
            "ttl_s": max(1, current["ttlMs"] // 1000 + 1),
        }
    return {
        "session": session,
        "qr": qr,
        "pairs": pairs,
        "pairing_code": (session.line_state or {}).get("pairingCode", ""),
        "pairing_form": PairingCodeForm(),
    }


@require_http_methods(["GET", "POST"])
@dashboard_view()
def session_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = SessionCreateForm()
    if request.method == "POST":
        if not ws.can_manage:
            raise PermissionDenied("Only owners and admins can create sessions.")
        form = SessionCreateForm(request.POST)
        if form.is_valid():
            session = services.session_create(
                environment=ws.environment, **form.cleaned_data
            )
            messages.success(request, f"Session “{session.display_name}” created.")
            return redirect("dashboard:session", session_id=session.public_id)
    return page(
        request,
        ws,
        "dashboard/sessions.html",
        {"sessions": call_selectors.session_list(ws.environment), "form": form},
        section="sessions",
        status=400 if form.errors else 200,
    )


@require_GET
@dashboard_view()
def session_rows(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return fragment(
        request,
        ws,
        "dashboard/partials/session_rows.html",
        {"sessions": call_selectors.session_list(ws.environment)},
    )


@require_GET
@dashboard_view()
def session_detail(
    request: HttpRequest, ws: Workspace, session_id: str
) -> HttpResponse:
    session = call_selectors.session_get(ws.environment, session_id)
    calls = call_selectors.call_list(ws.environment, session=session)[
        :RECENT_CALLS_SHOWN
    ]
    return page(
        request,
        ws,
        "dashboard/session_detail.html",
        {**_panel_context(ws, session), "calls": calls},
        section="sessions",
    )


@require_GET
@dashboard_view()
def session_panel(request: HttpRequest, ws: Workspace, session_id: str) -> HttpResponse:
    """The state, QR and actions of a session, swapped in as they change (or rotate)."""
    session = call_selectors.session_get(ws.environment, session_id)
    return fragment(
        request,
        ws,
        "dashboard/partials/session_panel.html",
        _panel_context(ws, session),
    )


def _to_session(session: Session) -> HttpResponse:
    return redirect("dashboard:session", session_id=session.public_id)


@require_POST
@dashboard_view(manage=True)
def session_connect(
    request: HttpRequest, ws: Workspace, session_id: str
) -> HttpResponse:
    session = services.session_connect(
        session=call_selectors.session_get(ws.environment, session_id)
    )
    if session.paired:
        messages.success(request, "Reconnected.")
    else:
        messages.info(request, "Pairing: scan the QR code with the phone.")
    return _to_session(session)


@require_POST
@dashboard_view(manage=True)
def session_pairing_code(
    request: HttpRequest, ws: Workspace, session_id: str
) -> HttpResponse:
    session = call_selectors.session_get(ws.environment, session_id)
    form = PairingCodeForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return _to_session(session)
    code = services.session_pairing_code(
        session=session, phone_number=form.cleaned_data["phone_number"]
    )
    messages.success(request, f"Pairing code {code}: enter it on the phone.")
    return _to_session(session)


@require_POST
@dashboard_view(manage=True)
def session_scan(request: HttpRequest, ws: Workspace, session_id: str) -> HttpResponse:
    """Test environments: the simulated phone scans the QR."""
    if not ws.is_test:
        raise Http404("Simulated scans exist only in test environments.")
    session = simulator_helpers.scan(
        call_selectors.session_get(ws.environment, session_id)
    )
    messages.success(request, f"Paired as {session.address}.")
    return _to_session(session)


@require_POST
@dashboard_view(manage=True)
def session_disconnect(
    request: HttpRequest, ws: Workspace, session_id: str
) -> HttpResponse:
    session = control.session_disconnect(
        session=call_selectors.session_get(ws.environment, session_id)
    )
    messages.success(request, "Disconnected; the line stays linked.")
    return _to_session(session)


@require_POST
@dashboard_view(manage=True)
def session_logout(
    request: HttpRequest, ws: Workspace, session_id: str
) -> HttpResponse:
    session = control.session_logout(
        session=call_selectors.session_get(ws.environment, session_id)
    )
    messages.success(request, "Logged out; pair the line again to use it.")
    return _to_session(session)


@require_POST
@dashboard_view(manage=True)
def session_delete(
    request: HttpRequest, ws: Workspace, session_id: str
) -> HttpResponse:
    session = control.session_delete(
        session=call_selectors.session_get(ws.environment, session_id)
    )
    messages.success(request, f"Session “{session.display_name}” deleted.")
    return redirect("dashboard:sessions")
