from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from config.fields import PublicIdModel


class Account(PublicIdModel):
    """A tenant. Everything a customer owns hangs off one of its environments."""

    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class EnvironmentKind(models.TextChoices):
    LIVE = "live", "Live"
    TEST = "test", "Test"


class Environment(PublicIdModel):
    """One of an account's two worlds (live/test); every resource belongs to one."""

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="environments"
    )
    kind = models.CharField(max_length=8, choices=EnvironmentKind.choices)
    recording_retention_days = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(3650)]
    )
    record_calls = models.BooleanField(default=True)
    # A call whose live socket dropped and that nobody else consumes (no socket, no
    # dial-out stream, no playback queued) ends `client_gone` after this long; 0 = never.
    end_call_when_client_gone_after_s = models.PositiveIntegerField(
        default=60, validators=[MaxValueValidator(86_400)]
    )
    # How long events and their webhook deliveries are kept (then purged in batches).
    event_retention_days = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(3650)]
    )
    # How long an ended call is kept (longer while any recording of it remains), and a
    # deleted session once none of its calls remain (calls/retention.py).
    call_retention_days = models.PositiveIntegerField(
        default=90, validators=[MinValueValidator(1), MaxValueValidator(3650)]
    )
    signing_secret = models.CharField(max_length=100, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "kind"], name="one_environment_per_kind"
            ),
            models.CheckConstraint(
                condition=models.Q(recording_retention_days__gte=1)
                & models.Q(recording_retention_days__lte=3650),
                name="retention_days_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(call_retention_days__gte=1)
                & models.Q(call_retention_days__lte=3650),
                name="call_retention_days_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=["live", "test"]),
                name="environment_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account.name} · {self.kind}"

    @property
    def is_test(self) -> bool:
        return self.kind == EnvironmentKind.TEST


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "account"], name="one_membership_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.role})"

    @property
    def can_manage(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)


class ApiKey(PublicIdModel):
    """An API key of one environment. Only the SHA-256 of the key is kept."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    display_prefix = models.CharField(max_length=16)
    last4 = models.CharField(max_length=4)
    key_hash = models.CharField(max_length=64, unique=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix}…{self.last4})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an ``Idempotency-Key``, replayed for 24 h."""

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress"
        DONE = "done"

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="+"
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.IN_PROGRESS
    )
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "key"], name="one_record_per_key"
            ),
        ]
        indexes = [
            # The expiry sweep: records older than 24 h.
            models.Index(fields=["created_at"], name="idempotency_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"


class Invitation(PublicIdModel):
    """An invitation to join an account. Only the SHA-256 of its token is kept: the raw
    token is in the link, which the inviter sees once and the invitee gets by email."""

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="invitations"
    )
    # Stored in lower case, so one address has one pending invitation.
    email = models.EmailField()
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
    )
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Also the index of the Team page's query: an account's pending invitations.
            models.UniqueConstraint(
                fields=["account", "email"],
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="one_pending_invitation_per_email",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=["owner", "admin", "member"]),
                name="invitation_role_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.account} ({self.role})"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()
