"""Sessions (DESIGN §4.1) and the simulated network's test helpers (§4.3)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from calls import selectors, services
from calls.api.problems import (
    ALREADY_PAIRED,
    CARRIER_UNAVAILABLE,
    NOT_PAIRING,
    NOT_READY,
    SESSION_DELETED,
)
from calls.api.serializers import (
    CallSerializer,
    IncomingCallSerializer,
    PairingCodeSerializer,
    PhoneNumberSerializer,
    QrSerializer,
    SessionCreateSerializer,
    SessionSerializer,
    SessionUpdateSerializer,
    call_data,
)
from calls.carriers import carriers_for
from calls.carriers.simulator import helpers as simulator
from calls.models import Call, Session
from calls.runtime import control
from config.api.idempotency import idempotent
from config.api.pagination import paginate
from config.api.schema import PAGE, envelope, page, problems
from config.api.views import EnvironmentAPIView, ok, query_names
from config.errors import Conflict, NotFound


def _session_data(session: Session) -> dict:
    return SessionSerializer(session).data


class SessionScopedView(EnvironmentAPIView):
    def session(self, session_id: str) -> Session:
        return selectors.session_get(self.environment, session_id)

    def call(self, session_id: str, call_id: str) -> Call:
        return selectors.call_get(self.environment, self.session(session_id), call_id)


@extend_schema(tags=["Sessions"])
class SessionListView(SessionScopedView):
    query_parameters = query_names(PAGE)

    @extend_schema(
        operation_id="listSessions",
        parameters=PAGE,
        responses=page(SessionSerializer),
        summary="List sessions",
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
        operation_id="createSession",
        request=SessionCreateSerializer,
        responses={201: envelope(SessionSerializer), **problems(CARRIER_UNAVAILABLE)},
        summary="Create a session",
        description="A new line, `connectionState: created`: connect it next.",
        examples=[
            OpenApiExample(
                "A line", value={"displayName": "My line"}, request_only=True
            )
        ],
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


@extend_schema(tags=["Sessions"])
class SessionDetailView(SessionScopedView):
    @extend_schema(
        operation_id="getSession",
        responses=envelope(SessionSerializer),
        summary="Get a session",
    )
    def get(self, request: Request, session_id: str) -> Response:
        return ok(_session_data(self.session(session_id)))

    @extend_schema(
        operation_id="updateSession",
        request=SessionUpdateSerializer,
        responses={200: envelope(SessionSerializer), **problems(SESSION_DELETED)},
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
        operation_id="deleteSession",
        responses={200: envelope(SessionSerializer)},
        summary="Delete a session (ends its live calls first)",
        description="The session is gone from the API afterwards; its calls stay.",
    )
    def delete(self, request: Request, session_id: str) -> Response:
        return ok(
            _session_data(control.session_delete(session=self.session(session_id)))
        )


@extend_schema(tags=["Sessions"])
class SessionConnectView(SessionScopedView):
    @extend_schema(
        operation_id="connectSession",
        request=None,
        responses={200: envelope(SessionSerializer), **problems(SESSION_DELETED)},
        summary="Start pairing, or reconnect a paired session",
        description="A no-op on a session that is connected or connecting.",
    )
    def post(self, request: Request, session_id: str) -> Response:
        return ok(
            _session_data(services.session_connect(session=self.session(session_id)))
        )


@extend_schema(tags=["Sessions"])
class SessionDisconnectView(SessionScopedView):
    @extend_schema(
        operation_id="disconnectSession",
        request=None,
        responses={200: envelope(SessionSerializer), **problems(SESSION_DELETED)},
        summary="Disconnect, keeping credentials",
    )
    def post(self, request: Request, session_id: str) -> Response:
        return ok(
            _session_data(control.session_disconnect(session=self.session(session_id)))
        )


@extend_schema(tags=["Sessions"])
class SessionLogoutView(SessionScopedView):
    @extend_schema(
        operation_id="logoutSession",
        request=None,
        responses={200: envelope(SessionSerializer), **problems(SESSION_DELETED)},
        summary="Unlink the line",
    )
    def post(self, request: Request, session_id: str) -> Response:
        return ok(
            _session_data(control.session_logout(session=self.session(session_id)))
        )


@extend_schema(tags=["Sessions"])
class SessionQrView(SessionScopedView):
    @extend_schema(
        operation_id="getSessionQr",
        responses={
            200: envelope(QrSerializer),
            **problems(NOT_PAIRING, ALREADY_PAIRED, SESSION_DELETED),
        },
        summary="The current pairing QR payload (rotates)",
    )
    def get(self, request: Request, session_id: str) -> Response:
        return ok(services.session_current_qr(session=self.session(session_id)))


@extend_schema(tags=["Sessions"])
class SessionPairingCodeView(SessionScopedView):
    @extend_schema(
        operation_id="requestPairingCode",
        request=PhoneNumberSerializer,
        responses={
            200: envelope(PairingCodeSerializer),
            **problems(NOT_PAIRING, ALREADY_PAIRED, SESSION_DELETED),
        },
        summary="Get a pairing code",
        examples=[
            OpenApiExample(
                "A phone number",
                value={"phoneNumber": "+15550009999"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, session_id: str) -> Response:
        body = PhoneNumberSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        code = services.session_pairing_code(
            session=self.session(session_id),
            phone_number=body.validated_data["phone_number"],
        )
        return ok({"code": code})


class TestHelperView(SessionScopedView):
    def session(self, session_id: str) -> Session:
        if not self.environment.is_test:
            raise NotFound(
                "Test helpers exist only in test environments.", code="not_found"
            )
        return super().session(session_id)


@extend_schema(tags=["Test helpers"])
class ScanView(TestHelperView):
    @extend_schema(
        operation_id="simulateScan",
        request=None,
        responses={
            200: envelope(SessionSerializer),
            **problems(NOT_PAIRING, ALREADY_PAIRED, SESSION_DELETED),
        },
        summary="The simulated phone scans the QR",
        description="The session becomes paired and connected. 404 in live environments.",
    )
    def post(self, request: Request, session_id: str) -> Response:
        return ok(_session_data(simulator.scan(self.session(session_id))))


@extend_schema(tags=["Test helpers"])
class DropView(TestHelperView):
    @extend_schema(
        operation_id="simulateDrop",
        request=None,
        responses={
            200: envelope(SessionSerializer),
            **problems(
                Conflict("The session is not connected.", code="session_not_connected")
            ),
        },
        summary="The line drops",
        description=(
            "Live calls end `session_disconnected`; the session becomes "
            "`disconnected`. 404 in live environments."
        ),
    )
    def post(self, request: Request, session_id: str) -> Response:
        return ok(
            _session_data(control.session_line_lost(session=self.session(session_id)))
        )


@extend_schema(tags=["Test helpers"])
class IncomingCallView(TestHelperView):
    @extend_schema(
        operation_id="simulateIncomingCall",
        request=IncomingCallSerializer,
        responses={
            201: envelope(CallSerializer),
            **problems(NOT_READY, SESSION_DELETED),
        },
        summary="A simulated peer calls",
        description="The call rings (`call.incoming`). 404 in live environments.",
        examples=[
            OpenApiExample(
                "An echoing caller",
                value={"from": "15550000042@s.whatsapp.net", "behavior": "echo"},
                request_only=True,
            )
        ],
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
        return ok(call_data(call), status=201)
