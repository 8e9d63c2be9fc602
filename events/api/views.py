"""Webhook endpoints and their deliveries (DESIGN §9)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
)
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.errors import (
    InvalidRequest,
)
from config.api.idempotency import idempotent
from config.api.pagination import paginate
from config.api.schema import PAGE, envelope, page, problems
from config.api.views import EnvironmentAPIView, ok, query_names
from config.errors import Conflict
from events import selectors, services
from events.api.serializers import (
    DeliveryFilterSerializer,
    DeliverySerializer,
    WebhookCreateSerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
    WebhookWithSecretSerializer,
)
from events.models import WebhookDelivery, WebhookEndpoint

WEBHOOK_DISABLED = Conflict(
    "The endpoint is disabled; enable it (PATCH enabled: true) first.",
    code="webhook_disabled",
)
DELIVERY_IN_PROGRESS = Conflict(
    "An attempt of this delivery is in progress.",
    code="delivery_in_progress",
    headers={"Retry-After": "5"},
)
UNKNOWN_EVENT_TYPE = InvalidRequest(
    "'call.answered' is not an event type; use one of … or '*' for all.",
    code="unknown_event_type",
    param="events[0]",
)


class WebhookScopedView(EnvironmentAPIView):
    def webhook(self, webhook_id: str) -> WebhookEndpoint:
        return selectors.webhook_get(self.environment, webhook_id)

    def delivery(self, webhook_id: str, delivery_id: str) -> WebhookDelivery:
        return selectors.delivery_get(
            self.environment, self.webhook(webhook_id), delivery_id
        )


def _webhook(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return WebhookSerializer(endpoint).data


@extend_schema(tags=["Webhooks"])
class WebhookListView(WebhookScopedView):
    query_parameters = query_names(PAGE)

    @extend_schema(
        operation_id="listWebhooks",
        parameters=PAGE,
        responses=page(WebhookSerializer),
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
        operation_id="createWebhook",
        request=WebhookCreateSerializer,
        responses={
            201: envelope(WebhookWithSecretSerializer),
            **problems(UNKNOWN_EVENT_TYPE),
        },
        summary="Create a webhook endpoint (its secret is shown in this response only)",
        examples=[
            OpenApiExample(
                "Call endings",
                value={
                    "url": "https://hooks.example.com/switchboard",
                    "events": ["call.ended", "call.recording.ready"],
                },
                request_only=True,
            )
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        body = WebhookCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = services.webhook_create(
            environment=self.environment, **body.validated_data
        )
        return ok(WebhookWithSecretSerializer(created.endpoint).data, status=201)


@extend_schema(tags=["Webhooks"])
class WebhookDetailView(WebhookScopedView):
    @extend_schema(
        operation_id="getWebhook",
        responses=envelope(WebhookSerializer),
        summary="Get a webhook endpoint",
    )
    def get(self, request: Request, webhook_id: str) -> Response:
        return ok(_webhook(self.webhook(webhook_id)))

    @extend_schema(
        operation_id="updateWebhook",
        request=WebhookUpdateSerializer,
        responses={200: envelope(WebhookSerializer), **problems(UNKNOWN_EVENT_TYPE)},
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
        operation_id="deleteWebhook",
        responses={200: envelope(WebhookSerializer)},
        summary="Delete a webhook endpoint and its delivery log",
    )
    def delete(self, request: Request, webhook_id: str) -> Response:
        endpoint = self.webhook(webhook_id)
        data = _webhook(endpoint)
        services.webhook_delete(endpoint=endpoint)
        return ok(data)


@extend_schema(tags=["Webhooks"])
class WebhookRotateSecretView(WebhookScopedView):
    @extend_schema(
        operation_id="rotateWebhookSecret",
        request=None,
        responses=envelope(WebhookWithSecretSerializer),
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


@extend_schema(tags=["Webhooks"])
class DeliveryListView(WebhookScopedView):
    query_parameters = query_names(PAGE) | {"status"}

    @extend_schema(
        operation_id="listWebhookDeliveries",
        parameters=[
            OpenApiParameter("status", str, enum=["pending", "succeeded", "failed"]),
            *PAGE,
        ],
        responses=page(DeliverySerializer),
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


@extend_schema(tags=["Webhooks"])
class DeliveryDetailView(WebhookScopedView):
    @extend_schema(
        operation_id="getWebhookDelivery",
        responses=envelope(DeliverySerializer),
        summary="Get a delivery",
    )
    def get(self, request: Request, webhook_id: str, delivery_id: str) -> Response:
        return ok(DeliverySerializer(self.delivery(webhook_id, delivery_id)).data)


@extend_schema(tags=["Webhooks"])
class DeliveryRetryView(WebhookScopedView):
    @extend_schema(
        operation_id="retryWebhookDelivery",
        request=None,
        responses={
            202: envelope(DeliverySerializer),
            **problems(WEBHOOK_DISABLED, DELIVERY_IN_PROGRESS),
        },
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
