from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts import keys
from accounts.models import Account, ApiKey, Environment, Membership
from config.tenancy import scoped_get


def api_key_by_secret(candidate: str) -> ApiKey | None:
    """Return the active or revoked key matching a presented secret (None if unknown)."""
    parsed = keys.parse(candidate)
    if parsed is None:
        return None
    return (
        ApiKey.objects.select_related("environment__account")
        .filter(key_hash=parsed.hash)
        .first()
    )


def api_key_list(environment: Environment) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(environment=environment)


def api_key_get(environment: Environment, public_id: object) -> ApiKey:
    return scoped_get(ApiKey.objects.all(), environment, public_id, what="api key")


def environment_of(account: Account, kind: str) -> Environment:
    return Environment.objects.select_related("account").get(account=account, kind=kind)


def memberships_of(user: Any) -> QuerySet[Membership]:
    return (
        Membership.objects.select_related("account")
        .filter(user=user)
        .order_by("account__name")
    )
