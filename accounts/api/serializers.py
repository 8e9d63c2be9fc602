from __future__ import annotations

from rest_framework import serializers

from accounts.models import Environment
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
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["kind", "created_at", "updated_at"]


class EnvironmentUpdateSerializer(serializers.Serializer):
    recording_retention_days = serializers.IntegerField(
        required=False, min_value=1, max_value=3650
    )
    record_calls = serializers.BooleanField(required=False)

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
