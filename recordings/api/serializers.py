from __future__ import annotations

from rest_framework import serializers

from config.api.serializers import ApiModelSerializer
from recordings.models import Recording, RecordingKind


class RecordingSerializer(ApiModelSerializer):
    recording_id = serializers.UUIDField(source="public_id", read_only=True)
    call_id = serializers.UUIDField(source="call.public_id", read_only=True)
    session_id = serializers.UUIDField(source="call.session.public_id", read_only=True)
    content_type = serializers.CharField(read_only=True)

    class Meta:
        model = Recording
        fields = [
            "recording_id",
            "call_id",
            "session_id",
            "kind",
            "content_type",
            "sample_rate",
            "channels",
            "duration_ms",
            "size_bytes",
            "created_at",
            "expires_at",
        ]


class RecordingFilterSerializer(serializers.Serializer):
    call_id = serializers.UUIDField(required=False)
    kind = serializers.ChoiceField(choices=RecordingKind.choices, required=False)
