from __future__ import annotations

import hashlib
from typing import Any

from django.db.models import Case, QuerySet, Value, When
from django.utils import timezone

from accounts import keys
from accounts.models import (
    Account,
    ApiKey,
    Environment,
    Invitation,
    Membership,
    Role,
)
from config.errors import ApplicationError, NotFound
from config.tenancy import parse_public_id, scoped_get


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


# ---------------------------------------------------------------- the team


def membership_list(account: Account) -> QuerySet[Membership]:
    """The account's members, owners first, then by name."""
    return (
        Membership.objects.select_related("user")
        .filter(account=account)
        .order_by(
            Case(
                *(
                    When(role=role, then=Value(rank))
                    for rank, role in enumerate(Role.values)
                ),
                default=Value(len(Role.values)),
            ),
            "user__username",
        )
    )


def membership_get(account: Account, membership_id: object) -> Membership:
    """One of the account's members; another account's is not found."""
    pk = _int_or_none(membership_id)
    found = (
        None
        if pk is None
        else Membership.objects.select_related("user", "account")
        .filter(account=account, pk=pk)
        .first()
    )
    if found is None:
        raise NotFound(
            f"No member with id {membership_id!s:.64} in this account.",
            code="member_not_found",
        )
    return found


def invitation_pending_list(account: Account) -> QuerySet[Invitation]:
    """Invitations neither accepted nor revoked (expired ones too), newest first."""
    return (
        Invitation.objects.select_related("invited_by")
        .filter(account=account, accepted_at__isnull=True, revoked_at__isnull=True)
        .order_by("-id")
    )


def invitation_get(account: Account, public_id: object) -> Invitation:
    """One of the account's invitations; another account's is not found."""
    parsed = parse_public_id(public_id)
    found = (
        None
        if parsed is None
        else Invitation.objects.filter(account=account, public_id=parsed).first()
    )
    if found is None:
        raise NotFound(
            f"No invitation with id {public_id!s:.64} in this account.",
            code="invitation_not_found",
        )
    return found


def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_by_token(token: str, *, lock: bool = False) -> Invitation:
    """The invitation a link opens, if it can still be accepted; why not, otherwise."""
    invitations = Invitation.objects.select_related("account", "invited_by")
    if lock:
        invitations = invitations.select_for_update(of=("self",))
    invitation = invitations.filter(token_hash=invitation_token_hash(token)).first()
    if invitation is None or not invitation.account.is_active:
        raise NotFound(
            "This invitation link is not valid. Check that you copied all of it, or "
            "ask for a new invitation.",
            code="invitation_not_found",
        )
    inviter = invitation.invited_by
    ask = (
        f"Ask {inviter.get_username()} for a new one."
        if inviter
        else "Ask for a new one."
    )
    if invitation.accepted_at is not None:
        raise ApplicationError(
            "This invitation has already been used. If you accepted it, log in "
            f"instead. {ask}",
            code="invitation_used",
            status=410,
            title="Invitation already used",
        )
    if invitation.revoked_at is not None:
        raise ApplicationError(
            f"This invitation was withdrawn. {ask}",
            code="invitation_revoked",
            status=410,
            title="Invitation withdrawn",
        )
    if invitation.expires_at <= timezone.now():
        raise ApplicationError(
            f"This invitation expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC. "
            f"{ask}",
            code="invitation_expired",
            status=410,
            title="Invitation expired",
        )
    return invitation


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None
