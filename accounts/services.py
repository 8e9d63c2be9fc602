from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts import keys
from accounts.models import (
    Account,
    ApiKey,
    Environment,
    EnvironmentKind,
    Invitation,
    Membership,
    Role,
)
from accounts.selectors import invitation_by_token, invitation_token_hash
from config.errors import Conflict, Forbidden, InvalidRequest

logger = logging.getLogger(__name__)

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


# ---------------------------------------------------------------- the team
#
# Owners and admins manage the team. Only an owner grants, changes or removes the owner
# role; nobody raises their own role; an account always keeps at least one owner.

INVITATION_TTL = timedelta(days=7)
RANK: dict[str, int] = {Role.OWNER: 0, Role.ADMIN: 1, Role.MEMBER: 2}


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    # Carries the raw token: returned here and emailed, never stored or shown again.
    link: str


def _manager(account: Account, user: Any) -> Membership:
    """The user's membership of the account, if it lets them manage the team."""
    membership = Membership.objects.filter(account=account, user=user).first()
    if membership is None or not membership.can_manage:
        raise Forbidden(
            "Only owners and admins can manage the team.", code="not_a_team_manager"
        )
    return membership


def _lock_team(account: Account) -> None:
    """Serialise changes to one account's team, so two demotions cannot both pass the
    last-owner check."""
    Account.objects.select_for_update().filter(pk=account.pk).first()


def _may_touch_owner_role(actor: Membership, *roles: str) -> None:
    if Role.OWNER in roles and actor.role != Role.OWNER:
        raise Forbidden(
            "Only an owner can make someone an owner, or change or remove an owner.",
            code="owner_role_needs_owner",
        )


def _keep_an_owner(membership: Membership) -> None:
    others = Membership.objects.filter(
        account_id=membership.account_id, role=Role.OWNER
    ).exclude(pk=membership.pk)
    if membership.role == Role.OWNER and not others.exists():
        raise Conflict(
            f"{membership.user.get_username()} is the account's last owner: make "
            "someone else an owner first.",
            code="last_owner",
        )


@transaction.atomic
def invitation_create(
    *,
    account: Account,
    invited_by: Any,
    email: str,
    role: str,
    link_for: Callable[[str], str],
) -> IssuedInvitation:
    """Invite an address to the account and email it the link; a pending invitation of
    the same address is replaced (its link stops working)."""
    _lock_team(account)
    actor = _manager(account, invited_by)
    if role not in Role.values:
        raise InvalidRequest(f"No role {role!r}.", param="role")
    _may_touch_owner_role(actor, role)
    email = email.strip().lower()
    if Membership.objects.filter(account=account, user__email__iexact=email).exists():
        raise Conflict(
            f"{email} is already a member of {account.name}.",
            code="already_a_member",
            param="email",
        )
    now = timezone.now()
    Invitation.objects.filter(
        account=account, email=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        account=account,
        email=email,
        role=role,
        token_hash=invitation_token_hash(token),
        invited_by=invited_by,
        expires_at=now + INVITATION_TTL,
    )
    link = link_for(token)
    transaction.on_commit(partial(_email_invitation, invitation, link))
    return IssuedInvitation(invitation=invitation, link=link)


def _email_invitation(invitation: Invitation, link: str) -> None:
    inviter = invitation.invited_by
    who = inviter.get_username() if inviter is not None else "Someone"
    body = (
        f"{who} invited you to join {invitation.account.name} on Switchboard as "
        f"{invitation.get_role_display().lower()}.\n\n"
        f"Open this link to accept (it works once, until "
        f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n\n{link}\n\n"
        "If you did not expect this invitation, ignore this message.\n"
    )
    try:
        send_mail(
            f"Join {invitation.account.name} on Switchboard",
            body,
            None,
            [invitation.email],
        )
    # The inviter has the link on their screen, so a mail server that fails must not
    # fail the invitation: it is recorded here, without the link.
    except Exception as error:
        logger.warning(
            "The invitation %s to %s could not be emailed: %s",
            invitation.public_id,
            invitation.email,
            error,
        )


def invitation_revoke(*, invitation: Invitation, by: Any) -> Invitation:
    """Withdraw a pending invitation; its link stops working."""
    _manager(invitation.account, by)
    if invitation.is_pending:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    return invitation


def _join(invitation: Invitation, user: Any) -> Membership:
    if Membership.objects.filter(account=invitation.account, user=user).exists():
        raise Conflict(
            f"You are already a member of {invitation.account.name}.",
            code="already_a_member",
        )
    membership = Membership.objects.create(
        user=user, account=invitation.account, role=invitation.role
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


@transaction.atomic
def invitation_accept(*, token: str, user: Any) -> Membership:
    """Make a logged-in user a member of the account the invitation's link names."""
    return _join(invitation_by_token(token, lock=True), user)


@transaction.atomic
def invitation_sign_up(*, token: str, username: str, password: str) -> Membership:
    """Create a user with the invitation's email address and make them a member."""
    invitation = invitation_by_token(token, lock=True)
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(
            "That username is taken: choose another, or log in if it is yours.",
            code="username_taken",
            param="username",
        )
    user = User.objects.create_user(
        username=username, email=invitation.email, password=password
    )
    return _join(invitation, user)


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, by: Any) -> Membership:
    """Give a member another role."""
    _lock_team(membership.account)
    membership.refresh_from_db(fields=["role"])
    actor = _manager(membership.account, by)
    if role not in Role.values:
        raise InvalidRequest(f"No role {role!r}.", param="role")
    if role == membership.role:
        return membership
    if membership.user_id == actor.user_id and RANK[role] < RANK[membership.role]:
        raise Forbidden("You cannot raise your own role.", code="own_role_raise")
    _may_touch_owner_role(actor, role, membership.role)
    _keep_an_owner(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, by: Any) -> None:
    """Take a member out of the account (their user stays)."""
    _lock_team(membership.account)
    membership.refresh_from_db(fields=["role"])
    actor = _manager(membership.account, by)
    _may_touch_owner_role(actor, membership.role)
    _keep_an_owner(membership)
    membership.delete()
