"""The event log: a JSON page, or a live Server-Sent Events stream (DESIGN §9)."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Environment
from calls import selectors as call_selectors
from config.api import ratelimit
from config.api.auth import authenticate_key, bearer_token
from config.api.errors import (
    PROBLEM_CONTENT_TYPE,
    ApplicationError,
    InvalidRequest,
    problem_body,
    rate_limited,
    request_id_of,
)
from config.api.pagination import read_limit
from config.api.schema import LIMIT, problems
from config.api.views import EnvironmentAPIView, query_names, snake_kwargs
from config.tenancy import parse_public_id
from events import selectors, services, sse
from events.api.serializers import (
    EventPageSerializer,
)
from events.models import EventType


class VerbatimJSONRenderer(JSONRenderer):
    """Envelopes go out exactly as in SSE and webhooks: event data is never re-cased."""

    charset = None


TYPE_NAME = "(" + "|".join(re.escape(name) for name in EventType.values) + ")"
EVENT_PARAMETERS = [
    OpenApiParameter(
        "after",
        OpenApiTypes.UUID,
        description=(
            "An event id: the events after it, oldest first. Without it: the latest "
            "`limit` events, oldest first."
        ),
    ),
    OpenApiParameter(
        "type",
        {"type": "string", "pattern": f"^{TYPE_NAME}(,{TYPE_NAME})*$"},
        description="Only events of these types, comma separated.",
    ),
    LIMIT,
    OpenApiParameter(
        "Last-Event-ID",
        str,
        location=OpenApiParameter.HEADER,
        description="With `Accept: text/event-stream`: resume after this event id.",
    ),
    OpenApiParameter(
        "lastEventId", str, description="The same as the Last-Event-ID header."
    ),
]
EVENT_RESPONSES = {
    **problems(
        InvalidRequest(
            "after is not the id of an event of this environment.",
            code="unknown_event_id",
            param="after",
        ),
        InvalidRequest("'call.answered' is not an event type.", param="type"),
        InvalidRequest(
            "Last-Event-ID is not the id of an event of this environment.",
            code="unknown_last_event_id",
            param="lastEventId",
        ),
    ),
    (200, "application/json"): EventPageSerializer,
    (200, sse.CONTENT_TYPE): OpenApiResponse(
        OpenApiTypes.STR,
        description=(
            "With `Accept: text/event-stream`: Server-Sent Events. Each message has "
            "`id:` (the event id), `event:` (its type) and `data:` (the envelope, one "
            "line of JSON); a `: ping` comment every 15 s when idle."
        ),
    ),
}
EVENT_DESCRIPTION = (
    "`Accept: text/event-stream` opens a Server-Sent Events stream: the events after "
    "`Last-Event-ID` (header or `?lastEventId=`) from the log, then live ones. Any other "
    "Accept returns a page of the log as JSON, oldest first, for polling with `after`."
)


@extend_schema(tags=["Events"])
class EventListView(EnvironmentAPIView):
    query_parameters = query_names(EVENT_PARAMETERS) | {"sessionId"}

    renderer_classes = [VerbatimJSONRenderer]

    @extend_schema(
        operation_id="listEvents",
        parameters=[
            OpenApiParameter(
                "sessionId", OpenApiTypes.UUID, description="One session's events."
            ),
            *EVENT_PARAMETERS,
        ],
        responses=EVENT_RESPONSES,
        summary="The environment's events: a JSON page, or a live SSE stream",
        description=EVENT_DESCRIPTION,
    )
    def get(self, request: Request, session_id: str | None = None) -> Response:
        session_public_id: str | None = None
        if session_id is not None:
            session = call_selectors.session_get(self.environment, session_id)
            session_public_id = str(session.public_id)
        elif request.query_params.get("sessionId"):
            parsed = parse_public_id(request.query_params["sessionId"])
            if parsed is None:
                raise InvalidRequest("sessionId is not a valid id.", param="sessionId")
            session_public_id = str(parsed)
        events = selectors.event_list(
            self.environment,
            session_public_id=session_public_id,
            types=_types(request.query_params.get("type")),
        )
        limit = read_limit(request)
        after = request.query_params.get("after")
        next_cursor = None
        if after:
            cursor = selectors.event_cursor(self.environment, after)
            if cursor is None:
                raise InvalidRequest(
                    "after is not the id of an event of this environment.",
                    code="unknown_event_id",
                    param="after",
                )
            # The log's commit-safe order: polling from the last id never skips one.
            page = selectors.events_after(
                self.environment.pk,
                cursor,
                session_public_id=session_public_id,
                types=_types(request.query_params.get("type")),
                limit=limit + 1,
            )
            if len(page) > limit:
                page = page[:limit]
                next_cursor = str(page[-1].public_id)
        else:
            page = list(selectors.settled(events).order_by("-txid", "-pk")[:limit])[
                ::-1
            ]
        return Response(
            {
                "data": [services.envelope_of(event) for event in page],
                "nextCursor": next_cursor,
            }
        )


class SessionEventListView(EventListView):
    query_parameters = query_names(EVENT_PARAMETERS)

    @extend_schema(
        operation_id="listSessionEvents",
        parameters=EVENT_PARAMETERS,
        responses=EVENT_RESPONSES,
        summary="A session's events: a JSON page, or a live SSE stream",
        description=EVENT_DESCRIPTION,
    )
    def get(self, request: Request, session_id: str | None = None) -> Response:
        return super().get(request, session_id)


def _types(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    types = [name.strip() for name in raw.split(",") if name.strip()]
    for name in types:
        if name not in EventType.values:
            raise InvalidRequest(f"{name!r} is not an event type.", param="type")
    return types


# ---------------------------------------------------------------- SSE


def _authenticate(authorization: str | None) -> Environment:
    """The API key's environment, counted against its rate limit like any request."""
    api_key = authenticate_key(bearer_token(authorization))
    count, remaining = ratelimit.hit(f"key:{api_key.public_id}")
    if count > settings.API_RATE_LIMIT_PER_MINUTE:
        raise rate_limited(remaining)
    return api_key.environment


# Not thread-sensitive: a shared pool thread, not one held per open stream.
authenticate = database_sync_to_async(_authenticate, thread_sensitive=False)
session_get = database_sync_to_async(call_selectors.session_get, thread_sensitive=False)


def problem(error: ApplicationError, request: HttpRequest) -> HttpResponse:
    """Problem details outside DRF, in the same shape the exception handler renders."""
    response = JsonResponse(
        problem_body(
            status=error.status,
            code=error.code,
            title=error.title,
            detail=error.detail,
            param=error.param,
            request_id=request_id_of(request),
            extra=error.extra,
        ),
        status=error.status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for name, value in error.headers.items():
        response[name] = value
    return response


async def event_stream_view(
    request: HttpRequest, session_id: str | None = None
) -> HttpResponseBase:
    """Open an SSE stream for an API key: the environment's, or one session's."""
    last_event_id = request.headers.get("Last-Event-ID") or request.GET.get(
        "lastEventId"
    )
    try:
        environment = await authenticate(request.headers.get("Authorization"))
        session_public_id = None
        if session_id is not None:
            session_public_id = (await session_get(environment, session_id)).public_id
        if last_event_id:
            await sse.check_last_event_id(environment, last_event_id)
    except ApplicationError as error:
        return problem(error, request)
    return sse.stream_response(
        sse.event_stream(environment, session_public_id, last_event_id)
    )


def negotiated(
    view_class: type[EventListView],
) -> Callable[..., Coroutine[Any, Any, HttpResponseBase]]:
    """One URL, two shapes: SSE for ``Accept: text/event-stream``, else the JSON view.

    The returned view is async, so streams run on the server's loop; it carries the DRF
    class as ``cls`` so the OpenAPI schema documents the route.
    """
    json_view = sync_to_async(view_class.as_view())

    async def view(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        if request.method == "GET" and sse.wants_event_stream(
            request.headers.get("Accept", "")
        ):
            return await event_stream_view(request, **snake_kwargs(kwargs))
        response: HttpResponseBase = await json_view(request, **kwargs)
        return response

    view.cls = view_class  # type: ignore[attr-defined]
    view.initkwargs = {}  # type: ignore[attr-defined]
    return csrf_exempt(view)
