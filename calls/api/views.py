from __future__ import annotations

from django.db.models import QuerySet
from djangorestframework_camel_case.util import underscoreize
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from calls import selectors, services
from calls.api.serializers import (
    CallCreateSerializer,
    CallFilterSerializer,
    CallSerializer,
    DtmfSerializer,
    IncomingCallSerializer,
    MuteSerializer,
    PairingCodeRequestSerializer,
    PairingCodeSerializer,
    QrSerializer,
    SessionCreateSerializer,
    SessionSerializer,
    SessionUpdateSerializer,
)
from calls.carriers import carriers_for
from calls.carriers.simulator import helpers as simulator
from calls.models import Call, Session
from calls.runtime import control
from config.api.idempotency import idempotent
from config.api.pagination import paginate
from config.api.views import EnvironmentAPIView, ok
from config.errors import NotFound
from streams.api.serializers import CallAcceptSerializer
from streams.api.views import streams_data

CALL_FILTERS = [
    OpenApiParameter("state", str, enum=["initiating", "ringing", "active", "ended"]),
    OpenApiParameter("direction", str, enum=["outgoing", "incoming"]),
    OpenApiParameter("createdAfter", str, description="ISO-8601 timestamp"),
    OpenApiParameter("createdBefore", str, description="ISO-8601 timestamp"),
    OpenApiParameter("limit", int),
    OpenApiParameter("cursor", str),
]
PAGE = [OpenApiParameter("limit", int), OpenApiParameter("cursor", str)]


def _session_data(session: Session) -> dict:
    return SessionSerializer(session).data


def _call_data(call: Call) -> dict:
    return CallSerializer(call).data


class SessionScopedView(EnvironmentAPIView):
    def session(self, session_id: str) -> Session:
        return selectors.session_get(self.environment, session_id)

    def call(self, session_id: str, call_id: str) -> Call:
        return selectors.call_get(self.environment, self.session(session_id), call_id)


class SessionListView(SessionScopedView):
    @extend_schema(
        parameters=PAGE, responses=SessionSerializer(many=True), summary="List sessions"
    )
    def get(self, request: Request) -> Response:
        return Response(
            paginate(
                request,
                selectors.session_list(self.environment),
                lambda page: SessionSerializer(page, many=True).data,
            )
        )

    @extend_schema(
        request=SessionCreateSerializer,
        responses={201: SessionSerializer},
        summary="Create a session",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        body = SessionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        # Without `carrier`, the environment's default one (the first it allows).
        carrier = data.get("carrier") or carriers_for(self.environment)[0]
        session = services.session_create(
            environment=self.environment,
            display_name=data["display_name"],
            device_browser=data["device_browser"],
            carrier=carrier,
            carrier_settings=body.carrier_settings(carrier),
        )
        return ok(_session_data(session), status=201)


class SessionDetailView(SessionScopedView):
    @extend_schema(responses=SessionSerializer, summary="Get a session")
    def get(self, request: Request, session_id: str) -> Response:
        return ok(_session_data(self.session(session_id)))

    @extend_schema(
        request=SessionUpdateSerializer,
        responses=SessionSerializer,
        summary="Rename a session or change its carrier settings",
        description=(
            "Fields left out keep their values; credentials in the carrier's settings "
            "object are write-only. New settings on a connected line bring it up again."
        ),
    )
    def patch(self, request: Request, session_id: str) -> Response:
        session = self.session(session_id)
        body = SessionUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        return ok(
            _session_data(
                services.session_update(
                    session=session,
                    display_name=data.get("display_name"),
                    device_browser=data.get("device_browser"),
                    carrier_settings=data.get(session.carrier),
                )
            )
        )

    @extend_schema(
        responses=SessionSerializer,
        summary="Delete a session (ends its live calls first)",
    )
    def delete(self, request: Request, session_id: str) -> Response:
        return ok(
            _session_data(control.session_delete(session=self.session(session_id)))
        )


class SessionConnectView(SessionScopedView):
    @extend_schema(
        request=None,
        responses=SessionSerializer,
        summary="Start pairing, or reconnect a paired session",
    )
    def post(self, request: Request, session_id: str) -> Response:
        return ok(
            _session_data(services.session_connect(session=self.session(session_id)))
        )


class SessionDisconnectView(SessionScopedView):
    @extend_schema(
        request=None,
        responses=SessionSerializer,
        summary="Disconnect, keeping credentials",
    )
    def post(self, request: Request, session_id: str) -> Response:
        return ok(
            _session_data(control.session_disconnect(session=self.session(session_id)))
        )


class SessionLogoutView(SessionScopedView):
    @extend_schema(request=None, responses=SessionSerializer, summary="Unlink the line")
    def post(self, request: Request, session_id: str) -> Response:
        return ok(
            _session_data(control.session_logout(session=self.session(session_id)))
        )


class SessionQrView(SessionScopedView):
    @extend_schema(
        responses=QrSerializer, summary="The current pairing QR payload (rotates)"
    )
    def get(self, request: Request, session_id: str) -> Response:
        return ok(services.session_current_qr(session=self.session(session_id)))


class SessionPairingCodeView(SessionScopedView):
    @extend_schema(
        request=PairingCodeRequestSerializer,
        responses=PairingCodeSerializer,
        summary="Get a pairing code",
    )
    def post(self, request: Request, session_id: str) -> Response:
        body = PairingCodeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        code = services.session_pairing_code(
            session=self.session(session_id),
            phone_number=body.validated_data["phone_number"],
        )
        return ok({"code": code})


class SessionCallsView(SessionScopedView):
    @extend_schema(
        parameters=CALL_FILTERS,
        responses=CallSerializer(many=True),
        summary="List a session's calls",
    )
    def get(self, request: Request, session_id: str) -> Response:
        session = self.session(session_id)
        return _call_page(
            request,
            selectors.call_list(
                self.environment, session=session, filters=_filters(request)
            ),
        )

    @extend_schema(
        request=CallCreateSerializer,
        responses={201: CallSerializer},
        summary="Place a call",
    )
    @idempotent
    def post(self, request: Request, session_id: str) -> Response:
        session = self.session(session_id)
        body = CallCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        streams = body.validated_data.get("streams") or []
        placed = control.call_place(
            session=session,
            to=body.validated_data["to"],
            record=body.validated_data["record"],
            streams=streams,
        )
        data = _call_data(placed.call)
        if streams:
            data["streams"] = streams_data(placed.streams)
        return ok(data, status=201)


def _filters(request: Request) -> dict:
    params = CallFilterSerializer(data=underscoreize(request.query_params.dict()))
    params.is_valid(raise_exception=True)
    return dict(params.validated_data)


def _call_page(request: Request, calls: QuerySet[Call]) -> Response:
    return Response(
        paginate(request, calls, lambda page: CallSerializer(page, many=True).data)
    )


class CallListView(SessionScopedView):
    @extend_schema(
        parameters=CALL_FILTERS,
        responses=CallSerializer(many=True),
        summary="List the environment's calls",
    )
    def get(self, request: Request) -> Response:
        return _call_page(
            request, selectors.call_list(self.environment, filters=_filters(request))
        )


class CallDetailView(SessionScopedView):
    @extend_schema(responses=CallSerializer, summary="A call's snapshot")
    def get(self, request: Request, session_id: str, call_id: str) -> Response:
        return ok(_call_data(self.call(session_id, call_id)))


class CallAcceptView(SessionScopedView):
    @extend_schema(
        request=CallAcceptSerializer,
        responses=CallSerializer,
        summary="Accept a ringing incoming call (optionally with dial-out streams)",
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        call = self.call(session_id, call_id)
        body = CallAcceptSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        streams = body.validated_data.get("streams") or []
        accepted = control.call_accept(call, streams=streams)
        data = _call_data(accepted.call)
        if streams:
            data["streams"] = streams_data(accepted.streams)
        return ok(data)


class CallRejectView(SessionScopedView):
    @extend_schema(
        request=None, responses=CallSerializer, summary="Reject a ringing call"
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        return ok(control.call_reject(self.call(session_id, call_id)))


class CallEndView(SessionScopedView):
    @extend_schema(
        request=None,
        responses=CallSerializer,
        summary="Hang up (idempotent on an ended call)",
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        return ok(control.call_end(self.call(session_id, call_id)))


class CallDtmfView(SessionScopedView):
    @extend_schema(
        request=DtmfSerializer,
        responses=CallSerializer,
        summary="Send DTMF digits to the peer",
        description=(
            "The digits leave in order, about 100 ms each (RFC 4733 telephone-events "
            "on SIP calls). 409 `call_not_active` unless the call is active; 409 "
            "`not_supported_by_carrier` where the carrier has no DTMF (the simulator). "
            "Digits the peer presses arrive as `call.dtmf` events and `dtmf` frames."
        ),
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        call = self.call(session_id, call_id)
        body = DtmfSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return ok(
            control.call_send_dtmf(call, digits=body.validated_data["digits"].upper())
        )


class CallMuteView(SessionScopedView):
    @extend_schema(
        request=MuteSerializer, responses=CallSerializer, summary="Mute or unmute"
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        call = self.call(session_id, call_id)
        body = MuteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return ok(control.call_mute(call, muted=body.validated_data["muted"]))


class TestHelperView(SessionScopedView):
    def session(self, session_id: str) -> Session:
        if not self.environment.is_test:
            raise NotFound(
                "Test helpers exist only in test environments.", code="not_found"
            )
        return super().session(session_id)


class ScanView(TestHelperView):
    @extend_schema(
        request=None,
        responses=SessionSerializer,
        summary="The simulated phone scans the QR",
    )
    def post(self, request: Request, session_id: str) -> Response:
        return ok(_session_data(simulator.scan(self.session(session_id))))


class DropView(TestHelperView):
    @extend_schema(request=None, responses=SessionSerializer, summary="The line drops")
    def post(self, request: Request, session_id: str) -> Response:
        return ok(
            _session_data(control.session_line_lost(session=self.session(session_id)))
        )


class IncomingCallView(TestHelperView):
    @extend_schema(
        request=IncomingCallSerializer,
        responses={201: CallSerializer},
        summary="A simulated peer calls",
    )
    @idempotent
    def post(self, request: Request, session_id: str) -> Response:
        session = self.session(session_id)
        body = IncomingCallSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        call = simulator.ring(
            session,
            from_address=body.validated_data["from"],
            behavior=body.validated_data["behavior"],
        )
        return ok(_call_data(call), status=201)
