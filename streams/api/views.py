from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from calls import selectors as call_selectors
from calls.models import Call
from config.api.idempotency import idempotent
from config.api.pagination import paginate
from config.api.views import EnvironmentAPIView, ok
from streams import selectors, services
from streams.api.serializers import StreamOptionsSerializer, StreamSerializer
from streams.models import Stream

PAGE = [OpenApiParameter("limit", int), OpenApiParameter("cursor", str)]


def stream_data(stream: Stream) -> dict[str, Any]:
    return StreamSerializer(stream).data


def streams_data(streams: Sequence[Stream]) -> list[dict[str, Any]]:
    return list(StreamSerializer(streams, many=True).data)


class CallStreamsView(EnvironmentAPIView):
    def call(self, session_id: str, call_id: str) -> Call:
        session = call_selectors.session_get(self.environment, session_id)
        return call_selectors.call_get(self.environment, session, call_id)


class StreamListView(CallStreamsView):
    @extend_schema(
        parameters=PAGE,
        responses=StreamSerializer(many=True),
        summary="List a call's dial-out streams",
    )
    def get(self, request: Request, session_id: str, call_id: str) -> Response:
        call = self.call(session_id, call_id)
        return Response(
            paginate(
                request, selectors.stream_list(self.environment, call), streams_data
            )
        )

    @extend_schema(
        request=StreamOptionsSerializer,
        responses={201: StreamSerializer},
        summary="Start a dial-out stream",
    )
    @idempotent
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        call = self.call(session_id, call_id)
        body = StreamOptionsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        stream = services.stream_create_and_start(
            call=call, options=body.validated_data
        )
        return ok(stream_data(stream), status=201)


class StreamDetailView(CallStreamsView):
    def stream(self, session_id: str, call_id: str, stream_id: str) -> Stream:
        return selectors.stream_get(
            self.environment, self.call(session_id, call_id), stream_id
        )

    @extend_schema(responses=StreamSerializer, summary="A dial-out stream")
    def get(
        self, request: Request, session_id: str, call_id: str, stream_id: str
    ) -> Response:
        return ok(stream_data(self.stream(session_id, call_id, stream_id)))

    @extend_schema(
        responses=StreamSerializer,
        summary="Stop a dial-out stream (idempotent)",
    )
    def delete(
        self, request: Request, session_id: str, call_id: str, stream_id: str
    ) -> Response:
        stream = self.stream(session_id, call_id, stream_id)
        return ok(stream_data(services.stream_stop(stream=stream)))
