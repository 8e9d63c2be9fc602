from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from rest_framework import serializers

from accounts.models import Account, Environment, EnvironmentKind
from config.api.schema import example, wire
from config.api.serializers import ApiModelSerializer


class EnvironmentSerializer(ApiModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    account_id = serializers.UUIDField(source="account.public_id", read_only=True)
    account_name = serializers.CharField(source="account.name", read_only=True)

    class Meta:
        model = Environment
        fields = [
            "id",
            "account_id",
            "account_name",
            "kind",
            "recording_retention_days",
            "record_calls",
            "event_retention_days",
            "call_retention_days",
            "end_call_when_client_gone_after_s",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["kind", "created_at", "updated_at"]


class EnvironmentUpdateSerializer(serializers.Serializer):
    refuses_unknown_fields = True  # the schema says so (additionalProperties: false)

    recording_retention_days = serializers.IntegerField(
        required=False, min_value=1, max_value=3650
    )
    record_calls = serializers.BooleanField(required=False)
    event_retention_days = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        help_text="Days events and their webhook deliveries are kept (default 30).",
    )
    call_retention_days = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        help_text="Days an ended call is kept (default 90), longer while any recording "
        "of it remains; a session deleted this long ago goes once its calls have gone.",
    )
    end_call_when_client_gone_after_s = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=86_400,
        help_text="Seconds after its live socket dropped, with nothing else consuming "
        "it, that a call ends `client_gone` (default 60; 0 = never).",
    )

    def validate(self, attrs: dict) -> dict:
        unknown = (
            set(self.initial_data) - set(self.fields)
            if isinstance(self.initial_data, dict)
            else set()
        )
        if unknown:
            raise serializers.ValidationError(
                {sorted(unknown)[0]: "This field is unknown or read-only."}
            )
        return attrs


class SigningSecretSerializer(serializers.Serializer):
    signing_secret = serializers.CharField()


EXAMPLE_TIME = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


@example("Environment")
def _environment_example() -> Any:
    environment = Environment(
        public_id=UUID("0197a5bf-2c4d-7e5f-8a6b-7c8d9e0f1a2b"),
        account=Account(
            public_id=UUID("0197a5bf-1a2b-7c3d-8e4f-5a6b7c8d9e0f"), name="Acme"
        ),
        kind=EnvironmentKind.TEST,
        recording_retention_days=30,
        record_calls=True,
        event_retention_days=30,
        call_retention_days=90,
        end_call_when_client_gone_after_s=60,
        created_at=EXAMPLE_TIME,
        updated_at=EXAMPLE_TIME,
    )
    return wire(EnvironmentSerializer(environment).data)


@example("SigningSecret")
def _signing_secret_example() -> Any:
    shown = {"signing_secret": "sbsig_" + "x" * 43}  # the shape of a real one
    return wire(SigningSecretSerializer(shown).data)
