from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from calls import selectors as call_selectors
from calls.models import Call
from config.api.errors import WireName
from config.api.idempotency import idempotent
from config.api.pagination import paginate
from config.api.schema import PAGE, envelope, invalid, page, problems
from config.api.views import EnvironmentAPIView, ok, query_names
from config.errors import Conflict
from streams import selectors, services
from streams.api.serializers import StreamOptionsSerializer, StreamSerializer
from streams.models import Stream

CREATE_DESCRIPTION = """\
The platform opens a WebSocket to `url` and streams the call's audio as JSON text \
frames (`connected`, `start`, `media`, `mark`, `stop`), in Wavix's shapes or, with \
`dialect: "twilio"`, Twilio Media Streams' ones. At most 1 twoway and 5 oneway live \
streams per call (409 `stream_limit`); a twoway stream carries the inbound track only.

Bodies written for Wavix work as they are: `stream_url`, `stream_type` and \
`stream_channel` are accepted in place of `url`, `type` and `channel` (not both of a \
pair), and a problem's `param` names the field as it was sent:

```json
{"stream_url": "wss://bot.example.com/media", "stream_type": "twoway", \
"stream_channel": "inbound"}
```

→ on a bad URL, `400` with `"param": "stream_url"`.\
"""


def stream_data(stream: Stream) -> dict[str, Any]:
    return StreamSerializer(stream).data


def streams_data(streams: Sequence[Stream]) -> list[dict[str, Any]]:
    return list(StreamSerializer(streams, many=True).data)


class CallStreamsView(EnvironmentAPIView):
    def call(self, session_id: str, call_id: str) -> Call:
        session = call_selectors.session_get(self.environment, session_id)
        return call_selectors.call_get(self.environment, session, call_id)


@extend_schema(tags=["Streams"])
class StreamListView(CallStreamsView):
    query_parameters = query_names(PAGE)

    @extend_schema(
        operation_id="listStreams",
        parameters=PAGE,
        responses=page(StreamSerializer),
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
        operation_id="createStream",
        request=StreamOptionsSerializer,
        responses={
            201: envelope(StreamSerializer),
            **problems(
                invalid(
                    WireName("stream_url"), "The URL must start with wss:// or ws://."
                ),
                Conflict("The call has ended.", code="call_not_active"),
                Conflict(
                    "A call has at most 1 twoway and 5 oneway live streams; this "
                    "would make 2 twoway and 0 oneway.",
                    code="stream_limit",
                ),
            ),
        },
        summary="Start a dial-out stream",
        description=CREATE_DESCRIPTION,
        examples=[
            OpenApiExample(
                "A twoway bot",
                value={
                    "url": "wss://bot.example.com/media",
                    "type": "twoway",
                    "channel": "inbound",
                    "customParameters": {"agent": "support"},
                },
                request_only=True,
            )
        ],
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


@extend_schema(tags=["Streams"])
class StreamDetailView(CallStreamsView):
    def stream(self, session_id: str, call_id: str, stream_id: str) -> Stream:
        return selectors.stream_get(
            self.environment, self.call(session_id, call_id), stream_id
        )

    @extend_schema(
        operation_id="getStream",
        responses=envelope(StreamSerializer),
        summary="A dial-out stream",
    )
    def get(
        self, request: Request, session_id: str, call_id: str, stream_id: str
    ) -> Response:
        return ok(stream_data(self.stream(session_id, call_id, stream_id)))

    @extend_schema(
        operation_id="stopStream",
        responses={200: envelope(StreamSerializer)},
        summary="Stop a dial-out stream (idempotent)",
        description="The stream stays readable, `stopped`, with its counters.",
    )
    def delete(
        self, request: Request, session_id: str, call_id: str, stream_id: str
    ) -> Response:
        stream = self.stream(session_id, call_id, stream_id)
        return ok(stream_data(services.stream_stop(stream=stream)))
