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


# The dashboard keeps the environment a user is looking at in the login session.
DASHBOARD_ENVIRONMENT_KEY = "sb_environment"


def membership_environment(
    user: Any, environment_public_id: object
) -> tuple[Environment, Membership] | None:
    """The environment (and the user's membership of its account), if the user belongs to it."""
    from config.tenancy import parse_public_id

    parsed = parse_public_id(environment_public_id)
    if parsed is None or not getattr(user, "is_authenticated", False):
        return None
    environment = (
        Environment.objects.select_related("account").filter(public_id=parsed).first()
    )
    if environment is None:
        return None
    membership = Membership.objects.filter(
        user=user, account=environment.account
    ).first()
    if membership is None:
        return None
    return environment, membership
