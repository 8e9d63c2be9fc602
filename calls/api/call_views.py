"""Calls (DESIGN §4.2): place, list, get, accept, reject, end, mute, DTMF."""

from __future__ import annotations

from django.db.models import QuerySet
from djangorestframework_camel_case.util import underscoreize
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from calls import selectors
from calls.api.problems import (
    CALL_ENDED,
    HOST_UNAVAILABLE,
    NOT_INCOMING,
    NOT_READY,
    NOT_RINGING,
    SESSION_DELETED,
    STREAM_LIMIT,
)
from calls.api.serializers import (
    CallCreateSerializer,
    CallFilterSerializer,
    CallSerializer,
    CallWithStreamsSerializer,
    DtmfSerializer,
    MuteSerializer,
    call_data,
    calls_data,
)
from calls.api.views import SessionScopedView
from calls.models import Call
from calls.runtime import control
from config.api.idempotency import idempotent
from config.api.pagination import paginate
from config.api.schema import PAGE, envelope, page, problems
from config.api.views import ok, query_names
from config.errors import Conflict
from streams.api.serializers import CallAcceptSerializer
from streams.api.views import streams_data

ECHO_PEER = "15550000001@s.whatsapp.net"
CALL_FILTERS = [
    OpenApiParameter("state", str, enum=["initiating", "ringing", "active", "ended"]),
    OpenApiParameter("direction", str, enum=["outgoing", "incoming"]),
    OpenApiParameter("createdAfter", OpenApiTypes.DATETIME, description="ISO-8601."),
    OpenApiParameter("createdBefore", OpenApiTypes.DATETIME, description="ISO-8601."),
    *PAGE,
]


@extend_schema(tags=["Calls"])
class SessionCallsView(SessionScopedView):
    query_parameters = query_names(CALL_FILTERS)

    @extend_schema(
        operation_id="listSessionCalls",
        parameters=CALL_FILTERS,
        responses=page(CallSerializer),
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
        operation_id="placeCall",
        request=CallCreateSerializer,
        responses={
            201: envelope(CallWithStreamsSerializer),
            **problems(NOT_READY, SESSION_DELETED, STREAM_LIMIT),
        },
        summary="Place a call",
        description=(
            "The session must be paired and connected (409 `session_not_ready`). `to` "
            "is the peer's address on the session's carrier: a WhatsApp JID "
            "(`<digits>@s.whatsapp.net`) on the simulator, whose last four digits "
            "choose the peer's behaviour (`0001` echoes). `streams` start when the "
            "call is answered; they are returned with the call."
        ),
        examples=[
            OpenApiExample("The echo peer", value={"to": ECHO_PEER}, request_only=True)
        ],
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
        data = call_data(placed.call)
        if streams:
            data["streams"] = streams_data(placed.streams)
        return ok(data, status=201)


def _filters(request: Request) -> dict:
    params = CallFilterSerializer(data=underscoreize(request.query_params.dict()))
    params.is_valid(raise_exception=True)
    return dict(params.validated_data)


def _call_page(request: Request, calls: QuerySet[Call]) -> Response:
    return Response(paginate(request, calls, calls_data))


@extend_schema(tags=["Calls"])
class CallListView(SessionScopedView):
    query_parameters = query_names(CALL_FILTERS)

    @extend_schema(
        operation_id="listCalls",
        parameters=CALL_FILTERS,
        responses=page(CallSerializer),
        summary="List the environment's calls",
    )
    def get(self, request: Request) -> Response:
        return _call_page(
            request, selectors.call_list(self.environment, filters=_filters(request))
        )


@extend_schema(tags=["Calls"])
class CallDetailView(SessionScopedView):
    @extend_schema(
        operation_id="getCall",
        responses=envelope(CallSerializer),
        summary="A call's snapshot",
    )
    def get(self, request: Request, session_id: str, call_id: str) -> Response:
        return ok(call_data(self.call(session_id, call_id)))


@extend_schema(tags=["Calls"])
class CallAcceptView(SessionScopedView):
    @extend_schema(
        operation_id="acceptCall",
        request=CallAcceptSerializer,
        responses={
            200: envelope(CallWithStreamsSerializer),
            **problems(
                NOT_INCOMING, NOT_RINGING, CALL_ENDED, STREAM_LIMIT, HOST_UNAVAILABLE
            ),
        },
        summary="Accept a ringing incoming call (optionally with dial-out streams)",
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        call = self.call(session_id, call_id)
        body = CallAcceptSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        streams = body.validated_data.get("streams") or []
        accepted = control.call_accept(call, streams=streams)
        data = call_data(accepted.call)
        if streams:
            data["streams"] = streams_data(accepted.streams)
        return ok(data)


@extend_schema(tags=["Calls"])
class CallRejectView(SessionScopedView):
    @extend_schema(
        operation_id="rejectCall",
        request=None,
        responses={
            200: envelope(CallSerializer),
            **problems(NOT_INCOMING, NOT_RINGING, CALL_ENDED, HOST_UNAVAILABLE),
        },
        summary="Reject a ringing call",
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        call = self.call(session_id, call_id)
        return ok(call_data(call, control.call_reject(call)))


@extend_schema(tags=["Calls"])
class CallEndView(SessionScopedView):
    @extend_schema(
        operation_id="endCall",
        request=None,
        responses={200: envelope(CallSerializer), **problems(HOST_UNAVAILABLE)},
        summary="Hang up (idempotent on an ended call)",
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        call = self.call(session_id, call_id)
        return ok(call_data(call, control.call_end(call)))


@extend_schema(tags=["Calls"])
class CallDtmfView(SessionScopedView):
    @extend_schema(
        operation_id="sendDtmf",
        request=DtmfSerializer,
        responses={
            200: envelope(CallSerializer),
            **problems(
                CALL_ENDED,
                Conflict(
                    "The simulator carrier cannot send DTMF.",
                    code="not_supported_by_carrier",
                ),
                HOST_UNAVAILABLE,
            ),
        },
        summary="Send DTMF digits to the peer",
        description=(
            "The digits leave in order, about 100 ms each (RFC 4733 telephone-events "
            "on SIP calls). 409 `call_not_active` unless the call is active; 409 "
            "`not_supported_by_carrier` where the carrier has no DTMF (the simulator). "
            "Digits the peer presses arrive as `call.dtmf` events and `dtmf` frames."
        ),
        examples=[OpenApiExample("Digits", value={"digits": "12#"}, request_only=True)],
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        call = self.call(session_id, call_id)
        body = DtmfSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        digits = body.validated_data["digits"].upper()
        return ok(call_data(call, control.call_send_dtmf(call, digits=digits)))


@extend_schema(tags=["Calls"])
class CallMuteView(SessionScopedView):
    @extend_schema(
        operation_id="muteCall",
        request=MuteSerializer,
        responses={
            200: envelope(CallSerializer),
            **problems(CALL_ENDED, HOST_UNAVAILABLE),
        },
        summary="Mute or unmute",
        description="While muted the peer hears silence; `call.state` tells the change.",
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        call = self.call(session_id, call_id)
        body = MuteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        muted = body.validated_data["muted"]
        return ok(call_data(call, control.call_mute(call, muted=muted)))
