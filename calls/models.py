from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import Environment
from config.fields import PublicIdModel


class ConnectionState(models.TextChoices):
    CREATED = "created"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    INACTIVE = "inactive"
    DISCONNECTED = "disconnected"
    ERROR = "error"


class Session(PublicIdModel):
    """A linked line (a WhatsApp-style linked device) of one environment."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="sessions"
    )
    display_name = models.CharField(max_length=100)
    device_browser = models.CharField(max_length=100, blank=True, default="")
    carrier = models.CharField(max_length=32, default="simulator")
    connection_state = models.CharField(
        max_length=16, choices=ConnectionState.choices, default=ConnectionState.CREATED
    )
    paired = models.BooleanField(default=False)
    active = models.BooleanField(default=False)
    # The line's own address on its network (a JID, a phone number, a SIP user).
    address = models.CharField(max_length=255, blank=True, default="")
    # The carrier's settings object as given (no secrets), and its secrets, encrypted
    # (calls/credentials.py); what the carrier keeps about the line (e.g. a pairing QR).
    carrier_settings = models.JSONField(default=dict, blank=True)
    credentials = models.TextField(blank=True, default="")
    line_state = models.JSONField(default=dict, blank=True)
    last_error = models.JSONField(null=True, blank=True)
    # The process that holds the line's network presence, while its lease runs.
    line_holder = models.CharField(max_length=128, blank=True, default="")
    line_lease_until = models.DateTimeField(null=True, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # Carrier housekeeping: a carrier's lines in a state (pairing QRs to
            # rotate, lines whose network presence a process must hold).
            models.Index(
                fields=["carrier", "connection_state"], name="session_carrier_state_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.public_id})"

    @property
    def connected(self) -> bool:
        return self.connection_state == ConnectionState.CONNECTED

    @property
    def status(self) -> str:
        """A one-word summary: ready, pairing, connecting, error, offline, unpaired or
        deleted."""
        if self.deleted_at is not None:
            return "deleted"
        if self.paired and self.connected:
            return "ready"
        if self.connection_state == ConnectionState.CONNECTING:
            # A line that links like a device pairs; any other (a trunk) connects.
            return "connecting" if self.paired else "pairing"
        if self.connection_state == ConnectionState.ERROR:
            return "error"
        if self.paired:
            return "offline"
        return "unpaired"


class CallState(models.TextChoices):
    INITIATING = "initiating"
    RINGING = "ringing"
    ACTIVE = "active"
    ENDED = "ended"


class Direction(models.TextChoices):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


class EndReason(models.TextChoices):
    COMPLETED = "completed"
    REMOTE_HANGUP = "remote_hangup"
    REJECTED = "rejected"
    DECLINED = "declined"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    MISSED = "missed"
    FAILED = "failed"
    SESSION_DISCONNECTED = "session_disconnected"
    MAX_DURATION = "max_duration"
    # Ended from the staff admin (who did it is in the admin's log).
    ENDED_BY_STAFF = "ended_by_staff"
    # Its live socket dropped and nothing else consumed it for the environment's
    # endCallWhenClientGoneAfterS.
    CLIENT_GONE = "client_gone"


class Call(PublicIdModel):
    """One audio call of a session; its runtime lives in the process named by ``host``."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="calls"
    )
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="calls")
    peer_address = models.CharField(max_length=255)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    state = models.CharField(max_length=12, choices=CallState.choices)
    end_reason = models.CharField(
        max_length=24, choices=EndReason.choices, blank=True, default=""
    )
    audio_muted = models.BooleanField(default=False)
    record = models.BooleanField(default=True)
    # What the network said about a failure: {carrier, code, message}.
    end_detail = models.JSONField(null=True, blank=True)
    # The client transport attached now ("websocket", "stream"), blank when none is.
    transport = models.CharField(max_length=16, blank=True, default="")
    # The carrier's own id of the call (Meta's ``wacid``…), for its signals and support.
    carrier_ref = models.CharField(
        max_length=200, blank=True, default="", db_index=True
    )
    host = models.CharField(max_length=128, blank=True, default="")
    ringing_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state="ended", ended_at__isnull=False)
                | (~models.Q(state="ended") & models.Q(end_reason="")),
                name="ended_iff_reason_and_time",
            ),
            models.CheckConstraint(
                condition=models.Q(direction__in=["outgoing", "incoming"]),
                name="call_direction_valid",
            ),
        ]
        indexes = [
            # The reaper: non-ended calls of a host that stopped beating.
            models.Index(fields=["host", "state"], name="call_host_state_idx"),
            # GET /calls filters by state within an environment, newest first.
            models.Index(
                fields=["environment", "state", "id"], name="call_env_state_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.direction} call {self.public_id} ({self.state})"

    @property
    def duration_ms(self) -> int:
        if self.answered_at is None:
            return 0
        end = self.ended_at or timezone.now()
        return max(0, int((end - self.answered_at).total_seconds() * 1000))

    @property
    def is_live(self) -> bool:
        return self.state != CallState.ENDED


class EngineHost(models.Model):
    """A process that hosts call runtimes; it proves it is alive by beating."""

    host_id = models.CharField(max_length=128, unique=True)
    channel_name = models.CharField(max_length=200, blank=True, default="")
    # Where clients reach this process directly (ws:// or wss://, from
    # SWITCHBOARD_PROCESS_URL; empty: only through the shared public URL).
    process_url = models.CharField(max_length=300, blank=True, default="")
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The reaper looks for hosts whose last beat is too old.
            models.Index(fields=["last_seen"], name="enginehost_last_seen_idx"),
        ]

    def __str__(self) -> str:
        return self.host_id
