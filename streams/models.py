from __future__ import annotations

from django.db import models

from accounts.models import Environment
from calls.models import Call
from config.fields import PublicIdModel


class StreamType(models.TextChoices):
    ONEWAY = "oneway"
    TWOWAY = "twoway"


class StreamChannel(models.TextChoices):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    BOTH = "both"


class StreamFormat(models.TextChoices):
    MULAW_8000 = "mulaw_8000"
    PCM16_16000 = "pcm16_16000"
    PCM16_24000 = "pcm16_24000"
    F32_16000 = "f32_16000"


class StreamDialect(models.TextChoices):
    WAVIX = "wavix"
    TWILIO = "twilio"


class OnDisconnect(models.TextChoices):
    CONTINUE = "continue"
    HANGUP = "hangup"
    RECONNECT = "reconnect"


class StreamState(models.TextChoices):
    PENDING = "pending"
    CONNECTING = "connecting"
    STREAMING = "streaming"
    STOPPED = "stopped"
    FAILED = "failed"


LIVE_STATES = (StreamState.PENDING, StreamState.CONNECTING, StreamState.STREAMING)
ENDED_STATES = (StreamState.STOPPED, StreamState.FAILED)


class Stream(PublicIdModel):
    """A dial-out media stream of one call to a customer's WebSocket (DESIGN §6)."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="+"
    )
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="streams")
    url = models.CharField(max_length=2048)
    type = models.CharField(max_length=8, choices=StreamType.choices)
    channel = models.CharField(max_length=8, choices=StreamChannel.choices)
    format = models.CharField(max_length=16, choices=StreamFormat.choices)
    dialect = models.CharField(max_length=8, choices=StreamDialect.choices)
    on_disconnect = models.CharField(
        max_length=12, choices=OnDisconnect.choices, default=OnDisconnect.CONTINUE
    )
    # The customer's own names and values, verbatim (never camelised).
    headers = models.JSONField(default=dict, blank=True)
    custom_parameters = models.JSONField(default=dict, blank=True)
    status_callback = models.CharField(max_length=2048, blank=True, default="")
    state = models.CharField(
        max_length=12, choices=StreamState.choices, default=StreamState.PENDING
    )
    reason = models.CharField(max_length=32, blank=True, default="")
    last_error = models.CharField(max_length=500, blank=True, default="")
    frames_sent = models.PositiveBigIntegerField(default=0)
    frames_received = models.PositiveBigIntegerField(default=0)
    frames_dropped = models.PositiveBigIntegerField(default=0)
    protocol_errors = models.PositiveIntegerField(default=0)
    reconnects = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(type="twoway") | models.Q(channel="inbound"),
                name="stream_twoway_is_inbound",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    state__in=["stopped", "failed"], stopped_at__isnull=False
                )
                | (
                    models.Q(state__in=["pending", "connecting", "streaming"])
                    & models.Q(stopped_at__isnull=True)
                ),
                name="stream_stopped_iff_ended",
            ),
            models.CheckConstraint(
                condition=models.Q(type__in=["oneway", "twoway"])
                & models.Q(channel__in=["inbound", "outbound", "both"])
                & models.Q(
                    format__in=["mulaw_8000", "pcm16_16000", "pcm16_24000", "f32_16000"]
                )
                & models.Q(dialect__in=["wavix", "twilio"])
                & models.Q(on_disconnect__in=["continue", "hangup", "reconnect"]),
                name="stream_options_valid",
            ),
        ]
        indexes = [
            # The per-call limit check, on_active's pending scan and the end-of-call
            # sweep: a call's streams in some states.
            models.Index(fields=["call", "state"], name="stream_call_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} stream {self.public_id} ({self.state})"

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES
