from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts import keys
from accounts.models import (
    Account,
    ApiKey,
    Environment,
    EnvironmentKind,
    Membership,
    Role,
)

LAST_USED_RESOLUTION = timedelta(minutes=1)


def signing_secret_new() -> str:
    return "sbsig_" + secrets.token_urlsafe(32)


@transaction.atomic
def account_create(*, name: str, owner: Any = None) -> Account:
    """Create an account with its live and test environments (and its owner's membership)."""
    account = Account.objects.create(name=name)
    for kind in EnvironmentKind.values:
        Environment.objects.create(
            account=account, kind=kind, signing_secret=signing_secret_new()
        )
    if owner is not None:
        Membership.objects.create(user=owner, account=account, role=Role.OWNER)
    return account


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    secret: str


def api_key_issue(*, environment: Environment, name: str) -> IssuedKey:
    """Issue a key for an environment; the secret is returned here and never again."""
    parsed = keys.generate(environment.kind)
    api_key = ApiKey.objects.create(
        environment=environment,
        name=name,
        display_prefix=parsed.display_prefix,
        last4=parsed.last4,
        key_hash=parsed.hash,
    )
    return IssuedKey(api_key=api_key, secret=parsed.full)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key; the next request that presents it is refused."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record use, at most once a minute per key so requests do not each write a row."""
    now = timezone.now()
    if (
        api_key.last_used_at is None
        or now - api_key.last_used_at > LAST_USED_RESOLUTION
    ):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def environment_update(
    *,
    environment: Environment,
    recording_retention_days: int | None = None,
    record_calls: bool | None = None,
    event_retention_days: int | None = None,
    call_retention_days: int | None = None,
    end_call_when_client_gone_after_s: int | None = None,
) -> Environment:
    """Change an environment's settings; retention applies to recordings made afterwards
    (events and calls: from the next purge; the client-gone delay: to calls placed
    afterwards)."""
    fields = ["updated_at"]
    if event_retention_days is not None:
        environment.event_retention_days = event_retention_days
        fields.append("event_retention_days")
    if call_retention_days is not None:
        environment.call_retention_days = call_retention_days
        fields.append("call_retention_days")
    if end_call_when_client_gone_after_s is not None:
        environment.end_call_when_client_gone_after_s = (
            end_call_when_client_gone_after_s
        )
        fields.append("end_call_when_client_gone_after_s")
    if recording_retention_days is not None:
        environment.recording_retention_days = recording_retention_days
        fields.append("recording_retention_days")
    if record_calls is not None:
        environment.record_calls = record_calls
        fields.append("record_calls")
    environment.save(update_fields=fields)
    return environment


def environment_rotate_signing_secret(*, environment: Environment) -> str:
    """Issue the environment a new signing secret (dial-out stream handshakes and status
    callbacks); returned here once, never shown again."""
    environment.signing_secret = signing_secret_new()
    environment.save(update_fields=["signing_secret", "updated_at"])
    return environment.signing_secret
