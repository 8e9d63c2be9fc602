from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import Environment
from calls.models import Call
from config.fields import PublicIdModel

CONTENT_TYPE = "audio/wav"
SAMPLE_RATE = 16_000
CHANNELS = 1


class RecordingKind(models.TextChoices):
    INBOUND = "inbound"  # the peer
    OUTBOUND = "outbound"  # what the peer heard
    MIXED = "mixed"  # both, summed


class Recording(PublicIdModel):
    """One stored WAV artifact of a call; the file lives in default storage."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="+"
    )
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="recordings")
    kind = models.CharField(max_length=8, choices=RecordingKind.choices)
    # Set by the service rather than auto_now_add, so that expires_at is exactly
    # created_at + the environment's retention.
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    file_name = models.CharField(max_length=300)
    sample_rate = models.PositiveIntegerField(default=SAMPLE_RATE)
    channels = models.PositiveSmallIntegerField(default=CHANNELS)
    duration_ms = models.PositiveBigIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    expires_at = models.DateTimeField()
    # [[low, high], …] per span of the audio, -127…127 (recordings/waveform.py): about
    # 3.5 kB for 400 spans. Null until computed (finalisation, or backfill_waveforms for
    # older rows); empty when the file holds no audio.
    waveform = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Finalisation is idempotent: a call has at most one artifact of each kind.
            models.UniqueConstraint(
                fields=["call", "kind"], name="one_recording_per_kind"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=["inbound", "outbound", "mixed"]),
                name="recording_kind_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")),
                name="recording_expires_after_creation",
            ),
        ]
        indexes = [
            # GET /recordings: an environment's recordings, newest first.
            models.Index(fields=["environment", "id"], name="recording_env_id_idx"),
            # The purge: recordings whose expiry has passed, oldest first.
            models.Index(fields=["expires_at"], name="recording_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} recording {self.public_id}"

    @property
    def content_type(self) -> str:
        return CONTENT_TYPE
