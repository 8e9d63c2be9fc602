"""Sessions: create (on a carrier the environment allows), connect and pair (QR or code),
edit a SIP trunk's or a WhatsApp number's settings, disconnect, log out, delete."""

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
from calls.carriers import carriers_for
from calls.carriers.simulator import helpers as simulator_helpers
from calls.models import ConnectionState, Session
from calls.runtime import control
from calls.snapshots import carrier_settings_of
from config.errors import InvalidRequest
from dashboard.forms import (
    CarrierSettingsForm,
    PairingCodeForm,
    SessionCreateForm,
    SipSettingsForm,
    WhatsAppSettingsForm,
)
from dashboard.qr import qr_data_uri
from dashboard.templatetags.wording import phone_number
from dashboard.views.pages import fragment, page
from dashboard.workspace import Workspace, dashboard_view, first_error

RECENT_CALLS_SHOWN = 10
SIP = "sip"
WHATSAPP = "whatsapp"
# The carriers whose settings object the dashboard edits, and the form of each.
SETTINGS_FORMS: dict[str, type[CarrierSettingsForm]] = {
    SIP: SipSettingsForm,
    WHATSAPP: WhatsAppSettingsForm,
}


def _registers(session: Session) -> bool:
    """Whether the session is a SIP trunk that registers (not an IP-authenticated one)."""
    return session.carrier == SIP and bool(
        (session.carrier_settings or {}).get("register", True)
    )


def _line_status(session: Session) -> dict[str, str]:
    """How a line that does not pair is doing, in its carrier's words:
    ``{label, tone}``, the tone one of ok, busy, off, error."""
    sip, registering = session.carrier == SIP, _registers(session)
    state = session.connection_state
    if session.deleted_at is not None:
        return {"label": "Deleted", "tone": "off"}
    if state == ConnectionState.CONNECTED:
        if registering:
            return {"label": "Registered", "tone": "ok"}
        label = "Ready (IP-authenticated trunk)" if sip else "Connected"
        return {"label": label, "tone": "ok"}
    if state == ConnectionState.CONNECTING:
        label = "Registering…" if registering else "Connecting…"
        return {"label": label, "tone": "busy"}
    if state == ConnectionState.ERROR:
        error = session.last_error or {}
        reason = " ".join(
            str(part) for part in (error.get("code"), error.get("message")) if part
        )
        failed = "Registration failed" if registering else "Connection failed"
        return {"label": f"{failed}: {reason}" if reason else failed, "tone": "error"}
    if state == ConnectionState.CREATED:
        return {"label": "Not connected yet", "tone": "off"}
    return {"label": "Disconnected", "tone": "off"}


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
    up = session.connection_state in (
        ConnectionState.CONNECTED,
        ConnectionState.CONNECTING,
    )
    # A line that is not paired is wanted up while active, even after the network
    # refused it: connecting it again would not retry; disconnecting or new settings do.
    wanted = up if pairs else session.active
    return {
        "session": session,
        "qr": qr,
        "pairs": pairs,
        "line": None if pairs else _line_status(session),
        "registers": _registers(session),
        "can_connect": not wanted,
        "can_disconnect": wanted,
        "pairing_code": (session.line_state or {}).get("pairingCode", ""),
        "pairing_form": PairingCodeForm(),
    }


def _create(
    ws: Workspace,
    form: SessionCreateForm,
    settings_forms: dict[str, CarrierSettingsForm],
) -> Session | None:
    """Create the session the forms describe, or put each refusal on its field."""
    if not form.is_valid():
        return None
    carrier = form.chosen_carrier()
    settings_form = settings_forms.get(carrier)
    if settings_form is not None and not settings_form.is_valid():
        return None
    try:
        return services.session_create(
            environment=ws.environment,
            display_name=form.cleaned_data["display_name"],
            device_browser=form.cleaned_data["device_browser"],
            carrier=carrier,
            carrier_settings=settings_form.settings() if settings_form else None,
        )
    except InvalidRequest as refused:
        on_settings = (refused.param or "").split(".")[0] == carrier
        if settings_form is not None and on_settings:
            settings_form.show_refusal(refused)
        else:
            on_carrier = refused.param == "carrier" and "carrier" in form.fields
            form.add_error("carrier" if on_carrier else None, refused.detail)
        return None


@require_http_methods(["GET", "POST"])
@dashboard_view()
def session_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    carriers = carriers_for(ws.environment)
    data = request.POST if request.method == "POST" else None
    form = SessionCreateForm(data, carriers=carriers)
    # A carrier's fields are read (and their errors shown) only when it is asked for.
    asked = data.get("carrier") if data is not None and len(carriers) > 1 else None
    chosen = asked or carriers[0]
    settings_forms: dict[str, CarrierSettingsForm] = {
        carrier: SETTINGS_FORMS[carrier](data if carrier == chosen else None)
        for carrier in carriers
        if carrier in SETTINGS_FORMS
    }
    if request.method == "POST":
        if not ws.can_manage:
            raise PermissionDenied("Only owners and admins can create sessions.")
        session = _create(ws, form, settings_forms)
        if session is not None:
            messages.success(request, f"Session “{session.display_name}” created.")
            return redirect("dashboard:session", session_id=session.public_id)
    failed = bool(form.errors or any(f.errors for f in settings_forms.values()))
    return page(
        request,
        ws,
        "dashboard/sessions.html",
        {
            "sessions": call_selectors.session_list(ws.environment),
            "form": form,
            "sip_form": settings_forms.get(SIP),
            "whatsapp_form": settings_forms.get(WHATSAPP),
        },
        section="sessions",
        status=400 if failed else 200,
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


def _detail(
    request: HttpRequest,
    ws: Workspace,
    session: Session,
    *,
    settings_form: CarrierSettingsForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The session's page; with its settings (and, for owners and admins, the form to
    edit them) when its carrier has a settings object."""
    calls = call_selectors.call_list(ws.environment, session=session)[
        :RECENT_CALLS_SHOWN
    ]
    carrier = session.carrier
    form_class = SETTINGS_FORMS.get(carrier)
    shown = None
    if form_class is not None:
        shown = carrier_settings_of(session)
        if shown is not None and settings_form is None and ws.can_manage:
            initial = form_class.initial_from(shown)
            settings_form = form_class(initial=initial, editing=True)
    return page(
        request,
        ws,
        "dashboard/session_detail.html",
        {
            **_panel_context(ws, session),
            "calls": calls,
            "sip": shown if carrier == SIP else None,
            "sip_form": settings_form if carrier == SIP else None,
            "whatsapp": shown if carrier == WHATSAPP else None,
            "whatsapp_form": settings_form if carrier == WHATSAPP else None,
        },
        section="sessions",
        status=status,
    )


@require_GET
@dashboard_view()
def session_detail(
    request: HttpRequest, ws: Workspace, session_id: str
) -> HttpResponse:
    return _detail(request, ws, call_selectors.session_get(ws.environment, session_id))


@require_POST
@dashboard_view(manage=True)
def session_settings(
    request: HttpRequest, ws: Workspace, session_id: str
) -> HttpResponse:
    """Change a SIP or WhatsApp session's settings; a blank secret keeps the stored
    one."""
    session = call_selectors.session_get(ws.environment, session_id)
    form_class = SETTINGS_FORMS.get(session.carrier)
    if form_class is None:
        raise Http404("This session has no settings to change here.")
    form = form_class(request.POST, editing=True)
    if form.is_valid():
        try:
            session = services.session_update(
                session=session, carrier_settings=form.settings()
            )
        except InvalidRequest as refused:
            form.show_refusal(refused)
        else:
            saved = f"{form.title} saved."
            if session.active:
                saved += " The line comes back up with them."
            messages.success(request, saved)
            return _to_session(session)
    return _detail(request, ws, session, settings_form=form, status=400)


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
    messages.success(request, f"Paired as {phone_number(session.address)}.")
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
