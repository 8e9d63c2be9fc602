from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from rest_framework import serializers

from config.api.schema import example, wire
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


@example("Recording")
def _recording_example() -> Any:
    from calls.api.serializers import example_call

    call = example_call()
    assert call.ended_at is not None
    recording = Recording(
        public_id=UUID("0197a5c1-4d5e-7f60-8172-839405a6b7c9"),
        call=call,
        kind=RecordingKind.MIXED,
        created_at=call.ended_at + timedelta(seconds=1),
        duration_ms=12480,
        size_bytes=399404,
        expires_at=call.ended_at + timedelta(days=30, seconds=1),
    )
    return wire(RecordingSerializer(recording).data)
