from __future__ import annotations

from django.db import models

from accounts.models import Environment
from config.fields import PublicIdModel


class AssetStatus(models.TextChoices):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class AudioAsset(PublicIdModel):
    """An uploaded audio file and, once decoded, its normalised 16 kHz mono version.

    ``original_name`` and ``audio_name`` are names in Django's default storage, under
    ``env/<environment id>/assets/<asset id>/``. The normalised audio is a 16 kHz mono
    16-bit PCM WAV: what playback plays, sample for sample.
    """

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="audio_assets"
    )
    # As the client named it, for display only; the format comes from the bytes.
    filename = models.CharField(max_length=255)
    # Of the sniffed format, never the client's claim.
    content_type = models.CharField(max_length=32)
    size_bytes = models.PositiveBigIntegerField()
    status = models.CharField(
        max_length=12, choices=AssetStatus.choices, default=AssetStatus.PROCESSING
    )
    error = models.TextField(blank=True, default="")
    error_code = models.CharField(max_length=32, blank=True, default="")
    # What the original held; known once decoding succeeded.
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    channels = models.PositiveSmallIntegerField(null=True, blank=True)
    original_name = models.CharField(max_length=300, blank=True, default="")
    audio_name = models.CharField(max_length=300, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["processing", "ready", "failed"]),
                name="asset_status_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="ready")
                | (
                    ~models.Q(audio_name="")
                    & models.Q(duration_ms__isnull=False)
                    & models.Q(sample_rate__isnull=False)
                    & models.Q(channels__isnull=False)
                ),
                name="ready_asset_has_audio",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="failed") | ~models.Q(error=""),
                name="failed_asset_has_error",
            ),
        ]
        indexes = [
            # GET /call-audio-assets?status=… within an environment, newest first.
            models.Index(
                fields=["environment", "status", "id"], name="asset_env_status_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.public_id})"

    @property
    def storage_prefix(self) -> str:
        return f"env/{self.environment.public_id}/assets/{self.public_id}/"
