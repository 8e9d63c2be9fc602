from __future__ import annotations

from typing import Any

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
    CALL_DTMF = "call.dtmf"
    CALL_PLAYBACK_STARTED = "call.playback.started"
    CALL_PLAYBACK_FINISHED = "call.playback.finished"
    CALL_STREAM_STARTED = "call.stream.started"
    CALL_STREAM_STOPPED = "call.stream.stopped"
    CALL_STREAM_FAILED = "call.stream.failed"
    CALL_RECORDING_READY = "call.recording.ready"
    ASSET_READY = "asset.ready"
    ASSET_FAILED = "asset.failed"


class CurrentTxid(models.Func):
    """The writing transaction's id: PostgreSQL's ``txid_current()``; 0 on SQLite, whose
    single writer commits in the order it writes."""

    function = "txid_current"
    template = "txid_current()"
    output_field = models.BigIntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return "0", []


class Event(PublicIdModel):
    """One change worth telling, written in the same transaction as the change.

    The log's order is ``(txid, id)``: ids are taken when rows are written, not when
    their transactions commit, so with several writers a smaller id may become visible
    after a larger one. Readers take only events whose transaction is older than every
    transaction still running (``events.selectors.settled``) in ``(txid, id)`` order,
    which never skips an event that commits later and never repeats one.
    """

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="+"
    )
    type = models.CharField(max_length=40, choices=EventType.choices)
    session_public_id = models.UUIDField(null=True, blank=True)
    data = models.JSONField(encoder=DjangoJSONEncoder)
    txid = models.BigIntegerField(db_default=CurrentTxid(), editable=False)

    class Meta:
        ordering = ["id"]
        indexes = [
            # SSE replay and the polling list: an environment's events after an id.
            models.Index(fields=["environment", "id"], name="event_env_id_idx"),
            # ... in commit-safe order: after a (txid, id) position.
            models.Index(
                fields=["environment", "txid", "id"], name="event_env_txid_idx"
            ),
            # A session's stream and a call's timeline filter by session within the env.
            models.Index(
                fields=["environment", "session_public_id", "id"],
                name="event_env_session_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"


class DisabledReason(models.TextChoices):
    NONE = "", "Enabled"
    MANUAL = "manual", "Disabled through the API"
    GONE = "gone", "The receiver answered 410 Gone"


class WebhookEndpoint(PublicIdModel):
    """A URL that receives an environment's events, signed with its secret."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="+"
    )
    url = models.CharField(max_length=2048)
    description = models.CharField(max_length=500, blank=True, default="")
    # Event types this endpoint receives; "*" means all of them.
    events = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(
        max_length=16, choices=DisabledReason.choices, blank=True, default=""
    )
    # Kept in the clear: signing needs the key itself. Never rendered after creation.
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "webhook endpoint"
        indexes = [
            # Fan-out after every event: the environment's enabled endpoints.
            models.Index(fields=["environment", "enabled"], name="webhook_env_enabled"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(disabled_reason__in=DisabledReason.values),
                name="webhook_disabled_reason_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.url

    def accepts(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookDelivery(PublicIdModel):
    """One event on its way to one endpoint: its attempts, and when the next one is due."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="+"
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # Fan-out runs once per event, but a replayed commit hook must not send twice.
            models.UniqueConstraint(
                fields=["endpoint", "event"], name="one_delivery_per_event_and_endpoint"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=DeliveryStatus.values),
                name="webhook_delivery_status_valid",
            ),
        ]
        indexes = [
            # The sweep: pending deliveries whose next attempt is overdue.
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
            # An endpoint's delivery log, newest first.
            models.Index(fields=["endpoint", "id"], name="delivery_endpoint_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery. (delivery, number) is the attempt's idempotency key:
    a task that runs twice finds the row taken and sends nothing."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempts"
    )
    number = models.PositiveIntegerField()
    manual = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    succeeded = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    response_body = models.CharField(max_length=1024, blank=True, default="")
    next_retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["delivery_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "number"], name="one_row_per_delivery_attempt"
            ),
        ]
        indexes = [
            # The sweep: attempts that started long ago and never finished.
            models.Index(fields=["finished_at", "started_at"], name="attempt_open_idx"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
