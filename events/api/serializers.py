from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.schema import documented, example, url_schema, wire
from config.api.serializers import ApiModelSerializer
from events.models import (
    DeliveryStatus,
    Event,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from events.services import WILDCARD, envelope_of

EVENT_TYPE_HELP = (
    "Event types to receive (DESIGN §9), or `*` for all: "
    + ", ".join(EventType.values)
    + "."
)


class _StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error rather than a no-op."""

    refuses_unknown_fields = True  # the schema says so (additionalProperties: false)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(self.initial_data, dict):
            unknown = set(self.initial_data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {sorted(unknown)[0]: "This field is unknown or read-only."}
                )
        return attrs


@extend_schema_field(
    {"type": "string", "enum": [*EventType.values, WILDCARD]},
    component_name="EventTypeName",
)
class EventTypeNameField(serializers.CharField):
    """An event type or `*` (the service checks the name, and says which are known)."""


class WebhookCreateSerializer(_StrictSerializer):
    url = documented(
        serializers.CharField(max_length=2048, help_text="https:// URL to POST to."),
        url_schema("https", "http"),
    )
    events = serializers.ListField(
        child=EventTypeNameField(max_length=40),
        max_length=len(EventType.values) + 1,
        help_text=EVENT_TYPE_HELP,
    )
    description = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )


class WebhookUpdateSerializer(_StrictSerializer):
    url = documented(
        serializers.CharField(max_length=2048, required=False),
        url_schema("https", "http"),
    )
    events = serializers.ListField(
        child=EventTypeNameField(max_length=40),
        max_length=len(EventType.values) + 1,
        required=False,
        help_text=EVENT_TYPE_HELP,
    )
    description = serializers.CharField(
        max_length=500, required=False, allow_blank=True
    )
    enabled = serializers.BooleanField(required=False)


class WebhookSerializer(ApiModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    events = serializers.ListField(child=serializers.CharField())
    disabled_reason = serializers.SerializerMethodField(
        help_text="`gone` (the receiver answered 410), `manual`, or null when enabled."
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "events",
            "description",
            "enabled",
            "disabled_reason",
            "secret_rotated_at",
            "created_at",
            "updated_at",
        ]

    def get_disabled_reason(self, endpoint: WebhookEndpoint) -> str | None:
        return endpoint.disabled_reason or None


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(
        help_text="`whsec_…`: shown in this response only. Verify deliveries with it."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class AttemptSerializer(ApiModelSerializer):
    attempt = serializers.IntegerField(source="number")

    class Meta:
        model = WebhookAttempt
        fields = [
            "attempt",
            "manual",
            "started_at",
            "finished_at",
            "succeeded",
            "status_code",
            "latency_ms",
            "error",
            "response_body",
            "next_retry_at",
        ]
        extra_kwargs = {
            "next_retry_at": {"help_text": "When the next attempt is due, if one is."},
            "response_body": {"help_text": "The first 1 KB of the response body."},
        }


class DeliverySerializer(ApiModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    webhook_id = serializers.UUIDField(source="endpoint.public_id", read_only=True)
    event_id = serializers.UUIDField(
        source="event.public_id",
        read_only=True,
        help_text="Also the `webhook-id` header of every attempt.",
    )
    event_type = serializers.CharField(source="event.type", read_only=True)
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook_id",
            "event_id",
            "event_type",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "completed_at",
            "attempts",
        ]


class DeliveryFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, required=False)


class EventSerializer(serializers.Serializer):
    """An event's envelope, exactly as SSE and webhooks carry it (`data` verbatim)."""

    id = serializers.UUIDField()
    type = serializers.CharField(help_text="The event type, e.g. `call.ended`.")
    created_at = serializers.CharField()
    session_id = serializers.UUIDField(allow_null=True)
    data = serializers.DictField()  # type: ignore[assignment]  # the wire name


class EventPageSerializer(serializers.Serializer):
    """A page of the event log, oldest first."""

    data = EventSerializer(many=True)  # type: ignore[assignment]  # the wire name
    next_cursor = serializers.CharField(
        allow_null=True,
        help_text="The last event's id when more follow: pass it as `after`.",
    )


# ---------------------------------------------------------------- schema examples


def _example_endpoint() -> WebhookEndpoint:
    created = datetime(2025, 6, 1, 8, 15, tzinfo=UTC)
    return WebhookEndpoint(
        public_id=UUID("0197a5bf-6e7f-7a80-9b1c-2d3e4f5a6b7c"),
        url="https://hooks.example.com/switchboard",
        events=["call.ended", "call.recording.ready"],
        description="Call endings",
        enabled=True,
        secret="whsec_" + "x" * 43,  # the shape of a real one
        created_at=created,
        updated_at=created,
    )


@example("Webhook")
def _webhook_example() -> Any:
    return wire(WebhookSerializer(_example_endpoint()).data)


@example("WebhookWithSecret")
def _webhook_with_secret_example() -> Any:
    return wire(WebhookWithSecretSerializer(_example_endpoint()).data)


@example("Event")
def _event_example() -> Any:
    from calls.api.serializers import example_call
    from calls.snapshots import call_snapshot

    call = example_call()
    snapshot = call_snapshot(call)
    event = Event(
        public_id=UUID("0197a5c1-5e6f-7a81-92a3-b4c5d6e7f809"),
        type=EventType.CALL_ENDED,
        session_public_id=call.session.public_id,
        data={"callId": snapshot["callId"], "call": snapshot, "endReason": "completed"},
        created_at=call.updated_at,
    )
    return envelope_of(event)
