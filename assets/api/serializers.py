from __future__ import annotations

from rest_framework import serializers

from assets.models import AssetStatus, AudioAsset
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
