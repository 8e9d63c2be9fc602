from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from accounts.models import Environment
from config.fields import PublicIdModel


class EventType(models.TextChoices):
    SESSION_CREATED = "session.created"
    SESSION_DELETED = "session.deleted"
    CONNECTION_STATE = "connection.state"
    AUTH_QR = "auth.qr"
    AUTH_PAIRED = "auth.paired"
    AUTH_LOGGED_OUT = "auth.logged_out"
    CALL_INCOMING = "call.incoming"
    CALL_STATE = "call.state"
    CALL_ENDED = "call.ended"
    CALL_PLAYBACK_STARTED = "call.playback.started"
    CALL_PLAYBACK_FINISHED = "call.playback.finished"
    CALL_STREAM_STARTED = "call.stream.started"
    CALL_STREAM_STOPPED = "call.stream.stopped"
    CALL_STREAM_FAILED = "call.stream.failed"
    CALL_RECORDING_READY = "call.recording.ready"
    ASSET_READY = "asset.ready"
    ASSET_FAILED = "asset.failed"


class Event(PublicIdModel):
    """One change worth telling, written in the same transaction as the change."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="+"
    )
    type = models.CharField(max_length=40, choices=EventType.choices)
    session_public_id = models.UUIDField(null=True, blank=True)
    data = models.JSONField(encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["id"]
        indexes = [
            # SSE replay and the polling list: an environment's events after an id.
            models.Index(fields=["environment", "id"], name="event_env_id_idx"),
            # A session's stream and a call's timeline filter by session within the env.
            models.Index(
                fields=["environment", "session_public_id", "id"],
                name="event_env_session_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"
