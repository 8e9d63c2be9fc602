from __future__ import annotations

from typing import Any

from rest_framework import serializers

from config.api.serializers import ApiModelSerializer
from events.models import (
    DeliveryStatus,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

EVENT_TYPE_HELP = (
    "Event types to receive (DESIGN §9), or `*` for all: "
    + ", ".join(EventType.values)
    + "."
)


class _StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error rather than a no-op."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(self.initial_data, dict):
            unknown = set(self.initial_data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {sorted(unknown)[0]: "This field is unknown or read-only."}
                )
        return attrs


class WebhookCreateSerializer(_StrictSerializer):
    url = serializers.CharField(max_length=2048, help_text="https:// URL to POST to.")
    events = serializers.ListField(
        child=serializers.CharField(max_length=40),
        max_length=len(EventType.values) + 1,
        help_text=EVENT_TYPE_HELP,
    )
    description = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )


class WebhookUpdateSerializer(_StrictSerializer):
    url = serializers.CharField(max_length=2048, required=False)
    events = serializers.ListField(
        child=serializers.CharField(max_length=40),
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


class EnvelopeSerializer(serializers.Serializer):
    """Documents the event envelope (rendered verbatim, never camelized again)."""

    id = serializers.UUIDField()
    type = serializers.CharField(help_text="The event type, e.g. `call.ended`.")
    created_at = serializers.CharField()
    session_id = serializers.UUIDField(allow_null=True)
    data = serializers.DictField()  # type: ignore[assignment]  # the wire name


class EventPageSerializer(serializers.Serializer):
    data = EnvelopeSerializer(many=True)  # type: ignore[assignment]  # the wire name
    next_cursor = serializers.CharField(
        allow_null=True,
        help_text="The last event's id when more follow: pass it as `after`.",
    )
