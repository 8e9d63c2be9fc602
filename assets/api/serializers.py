from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from rest_framework import serializers

from assets.models import AssetStatus, AudioAsset
from config.api.schema import example, wire
from config.api.serializers import ApiModelSerializer


class AssetSerializer(ApiModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    error = serializers.SerializerMethodField()

    class Meta:
        model = AudioAsset
        fields = [
            "id",
            "filename",
            "content_type",
            "size_bytes",
            "duration_ms",
            "sample_rate",
            "channels",
            "status",
            "error",
            "created_at",
        ]

    def get_error(self, asset: AudioAsset) -> str | None:
        return asset.error or None


class AssetUploadSerializer(serializers.Serializer):
    audio = serializers.FileField(
        allow_empty_file=False,
        help_text="The audio file (WAV, FLAC, Ogg Vorbis, Opus, MP3, AIFF, M4A), "
        "up to 32 MiB; its format is read from its bytes.",
    )


class AssetFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=AssetStatus.choices, required=False)


class PlaySerializer(serializers.Serializer):
    asset_id = serializers.CharField(max_length=64)
    mode = serializers.ChoiceField(
        choices=["queue", "interrupt"],
        default="queue",
        help_text="`queue` plays after what is queued; `interrupt` stops what is "
        "playing or queued and plays this now.",
    )


class PlaybackSerializer(serializers.Serializer):
    playback_id = serializers.CharField()
    asset_id = serializers.CharField()
    state = serializers.ChoiceField(
        choices=["queued", "playing", "completed", "stopped", "call_ended"]
    )
    started_at = serializers.CharField(allow_null=True)


class StoppedSerializer(serializers.Serializer):
    stopped = PlaybackSerializer(many=True)


@example("Asset")
def _asset_example() -> Any:
    asset = AudioAsset(
        public_id=UUID("0197a5be-4d5e-7f60-8172-839405a6b7c8"),
        filename="greeting.wav",
        content_type="audio/wav",
        size_bytes=96044,
        duration_ms=3000,
        sample_rate=16000,
        channels=1,
        status=AssetStatus.READY,
        created_at=datetime(2025, 6, 1, 8, 30, tzinfo=UTC),
    )
    return wire(AssetSerializer(asset).data)


PLAYBACK_EXAMPLE = {
    "playback_id": "0197a5c1-3c4d-7e5f-8a6b-7c8d9e0f1a2b",
    "asset_id": "0197a5be-4d5e-7f60-8172-839405a6b7c8",
    "state": "playing",
    "started_at": "2025-06-02T09:30:10.120Z",
}


@example("Playback")
def _playback_example() -> Any:
    return wire(PlaybackSerializer(PLAYBACK_EXAMPLE).data)


@example("Stopped")
def _stopped_example() -> Any:
    stopped = {**PLAYBACK_EXAMPLE, "state": "stopped"}
    return wire(StoppedSerializer({"stopped": [stopped]}).data)
