from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
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
    RateLimited,
    problem_body,
    request_id_of,
)
from config.api.idempotency import idempotent
from config.api.pagination import paginate, read_limit
from config.api.views import EnvironmentAPIView, ok
from config.tenancy import parse_public_id
from events import selectors, services, sse
from events.api.serializers import (
    DeliveryFilterSerializer,
    DeliverySerializer,
    EventPageSerializer,
    WebhookCreateSerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
    WebhookWithSecretSerializer,
)
from events.models import EventType, WebhookDelivery, WebhookEndpoint

PAGE = [OpenApiParameter("limit", int), OpenApiParameter("cursor", str)]

# ---------------------------------------------------------------- webhooks


class WebhookScopedView(EnvironmentAPIView):
    def webhook(self, webhook_id: str) -> WebhookEndpoint:
        return selectors.webhook_get(self.environment, webhook_id)

    def delivery(self, webhook_id: str, delivery_id: str) -> WebhookDelivery:
        return selectors.delivery_get(
            self.environment, self.webhook(webhook_id), delivery_id
        )


def _webhook(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return WebhookSerializer(endpoint).data


class WebhookListView(WebhookScopedView):
    @extend_schema(
        parameters=PAGE,
        responses=WebhookSerializer(many=True),
        summary="List webhook endpoints",
    )
    def get(self, request: Request) -> Response:
        return Response(
            paginate(
                request,
                selectors.webhook_list(self.environment),
                lambda page: WebhookSerializer(page, many=True).data,
            )
        )

    @extend_schema(
        request=WebhookCreateSerializer,
        responses={201: WebhookWithSecretSerializer},
        summary="Create a webhook endpoint (its secret is shown in this response only)",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        body = WebhookCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = services.webhook_create(
            environment=self.environment, **body.validated_data
        )
        return ok(WebhookWithSecretSerializer(created.endpoint).data, status=201)


class WebhookDetailView(WebhookScopedView):
    @extend_schema(responses=WebhookSerializer, summary="Get a webhook endpoint")
    def get(self, request: Request, webhook_id: str) -> Response:
        return ok(_webhook(self.webhook(webhook_id)))

    @extend_schema(
        request=WebhookUpdateSerializer,
        responses=WebhookSerializer,
        summary="Change a webhook endpoint (url, events, description, enabled)",
    )
    def patch(self, request: Request, webhook_id: str) -> Response:
        endpoint = self.webhook(webhook_id)
        body = WebhookUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return ok(
            _webhook(services.webhook_update(endpoint=endpoint, **body.validated_data))
        )

    @extend_schema(
        responses=WebhookSerializer,
        summary="Delete a webhook endpoint and its delivery log",
    )
    def delete(self, request: Request, webhook_id: str) -> Response:
        endpoint = self.webhook(webhook_id)
        data = _webhook(endpoint)
        services.webhook_delete(endpoint=endpoint)
        return ok(data)


class WebhookRotateSecretView(WebhookScopedView):
    @extend_schema(
        request=None,
        responses=WebhookWithSecretSerializer,
        summary="Rotate the secret (the old one keeps signing for 24 h)",
        description=(
            "Returns the new secret, once. For WEBHOOK_SECRET_OVERLAP_S (24 h) every "
            "delivery carries two signatures in `webhook-signature`, one per secret, "
            "so receivers verify with either while they switch."
        ),
    )
    @idempotent
    def post(self, request: Request, webhook_id: str) -> Response:
        rotated = services.webhook_rotate_secret(endpoint=self.webhook(webhook_id))
        return ok(WebhookWithSecretSerializer(rotated.endpoint).data)


class DeliveryListView(WebhookScopedView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=["pending", "succeeded", "failed"]),
            *PAGE,
        ],
        responses=DeliverySerializer(many=True),
        summary="A webhook endpoint's deliveries and their attempts, newest first",
    )
    def get(self, request: Request, webhook_id: str) -> Response:
        endpoint = self.webhook(webhook_id)
        filters = DeliveryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return Response(
            paginate(
                request,
                selectors.delivery_list(
                    self.environment,
                    endpoint,
                    status=filters.validated_data.get("status"),
                ),
                lambda page: DeliverySerializer(page, many=True).data,
            )
        )


class DeliveryDetailView(WebhookScopedView):
    @extend_schema(responses=DeliverySerializer, summary="Get a delivery")
    def get(self, request: Request, webhook_id: str, delivery_id: str) -> Response:
        return ok(DeliverySerializer(self.delivery(webhook_id, delivery_id)).data)


class DeliveryRetryView(WebhookScopedView):
    @extend_schema(
        request=None,
        responses={202: DeliverySerializer},
        summary="Send a delivery again now (a new attempt, the same webhook-id)",
    )
    def post(self, request: Request, webhook_id: str, delivery_id: str) -> Response:
        retried = services.delivery_retry(
            delivery=self.delivery(webhook_id, delivery_id)
        )
        fresh = selectors.delivery_get(
            self.environment, retried.endpoint, retried.public_id
        )
        return ok(DeliverySerializer(fresh).data, status=202)


# ---------------------------------------------------------------- events


class VerbatimJSONRenderer(JSONRenderer):
    """Envelopes go out exactly as in SSE and webhooks: event data is never re-cased."""

    charset = None


EVENT_PARAMETERS = [
    OpenApiParameter(
        "after",
        str,
        description=(
            "An event id: the events after it, oldest first. Without it: the latest "
            "`limit` events, oldest first."
        ),
    ),
    OpenApiParameter("type", str, description="Event types, comma separated."),
    OpenApiParameter("limit", int),
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


class EventListView(EnvironmentAPIView):
    renderer_classes = [VerbatimJSONRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("sessionId", str, description="One session's events."),
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
            position = selectors.event_position(self.environment, after)
            if position is None:
                raise InvalidRequest(
                    "after is not the id of an event of this environment.",
                    code="unknown_event_id",
                    param="after",
                )
            page = list(events.filter(pk__gt=position).order_by("pk")[: limit + 1])
            if len(page) > limit:
                page = page[:limit]
                next_cursor = str(page[-1].public_id)
        else:
            page = list(events.order_by("-pk")[:limit])[::-1]
        return Response(
            {
                "data": [services.envelope_of(event) for event in page],
                "nextCursor": next_cursor,
            }
        )


class SessionEventListView(EventListView):
    @extend_schema(
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
        wait = max(1, round(remaining))
        raise RateLimited(
            f"Rate limit exceeded; retry in {wait} s.",
            headers={"Retry-After": str(wait)},
        )
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
            return await event_stream_view(request, **kwargs)
        response: HttpResponseBase = await json_view(request, **kwargs)
        return response

    view.cls = view_class  # type: ignore[attr-defined]
    view.initkwargs = {}  # type: ignore[attr-defined]
    return csrf_exempt(view)
