"""The Team page: inviting by email (the link shown once), accepting by signing up or
logging in, changing roles and removing members, and who may do which."""

from __future__ import annotations

import hashlib
import logging
import re
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import Invitation, Membership, Role
from conftest import Tenant
from dashboard.tests.conftest import PASSWORD, browser_for, make_user

pytestmark = pytest.mark.django_db

TEAM = "/dashboard/team/"
LINK_RE = re.compile(
    r'value="(http://testserver/dashboard/invitations/([A-Za-z0-9_-]+)/)" '
    r'data-testid="invitation-link"'
)
NEW_PASSWORD = "a-long-and-unusual-passphrase-42"


@pytest.fixture
def owner_user(tenant: Tenant) -> Any:
    return make_user("olivia", tenant, Role.OWNER)


@pytest.fixture
def owner(owner_user: Any, tenant: Tenant) -> Client:
    return browser_for(owner_user, tenant.test)


def invite(
    client: Client,
    email: str = "new@example.com",
    role: str = Role.MEMBER,
    capture: Callable[..., Any] | None = None,
) -> tuple[str, str]:
    """Invite through the page; return the link it shows and the page."""
    response = client.post(TEAM, {"email": email, "role": role})
    page = response.content.decode()
    assert response.status_code == 200, page
    found = LINK_RE.search(page)
    assert found, page
    return found.group(1), page


def path_of(link: str) -> str:
    return link.removeprefix("http://testserver")


def token_of(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[-1]


def sign_up(link: str, username: str = "newcomer") -> Any:
    visitor = Client()
    return visitor, visitor.post(
        path_of(link),
        {
            "username": username,
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
        },
        follow=True,
    )


def role_of(tenant: Tenant, username: str) -> str | None:
    membership = Membership.objects.filter(
        account=tenant.account, user__username=username
    ).first()
    return None if membership is None else membership.role


# ---------------------------------------------------------------- inviting


def test_an_invitation_is_emailed_and_its_link_shown_once(
    owner: Client, tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(TEAM, {"email": "New@Example.com", "role": "admin"})
    assert response["Cache-Control"].startswith("max-age=0")  # never cached
    page = response.content.decode()
    link, token = LINK_RE.search(page).groups()  # type: ignore[union-attr]
    assert (
        "it is shown only this once" in page and 'data-copy="#invitation-link"' in page
    )

    invitation = Invitation.objects.get(account=tenant.account)
    assert (invitation.email, invitation.role) == ("new@example.com", Role.ADMIN)
    # Only the hash is kept; the token is nowhere in the row.
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(Invitation.objects.filter(pk=invitation.pk).values()[0])
    assert (
        timedelta(days=6, hours=23)
        < invitation.expires_at - timezone.now()
        <= (timedelta(days=7))
    )
    [sent] = mail.outbox
    assert sent.to == ["new@example.com"] and link in sent.body
    assert "Acme" in sent.subject and "olivia invited you" in sent.body

    listing = owner.get(TEAM).content.decode()
    assert token not in listing
    assert "new@example.com" in listing and "No pending invitations" not in listing


def test_the_embedded_default_prints_the_invitation_email_to_the_log(
    owner: Client,
    settings: Any,
    capsys: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    with django_capture_on_commit_callbacks(execute=True):
        link, _ = invite(owner)
    printed = capsys.readouterr().out
    assert "To: new@example.com" in printed and link in printed


def test_a_mail_server_that_fails_leaves_the_invitation_and_its_shown_link(
    owner: Client,
    settings: Any,
    caplog: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", closed_port
    settings.EMAIL_TIMEOUT = 5
    with (
        caplog.at_level(logging.WARNING, "accounts.services"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        link, _ = invite(owner)
    assert Invitation.objects.filter(email="new@example.com").count() == 1
    assert "could not be emailed" in caplog.text and "new@example.com" in caplog.text
    assert token_of(link) not in caplog.text


def test_inviting_again_replaces_the_pending_invitation(
    owner: Client, tenant: Tenant
) -> None:
    first, _ = invite(owner)
    second, _ = invite(owner, role=Role.ADMIN)
    pending = Invitation.objects.filter(account=tenant.account, revoked_at=None)
    assert [i.role for i in pending] == [Role.ADMIN]
    refused = Client().get(path_of(first))
    assert refused.status_code == 410
    assert "This invitation was withdrawn. Ask olivia for a new one." in (
        refused.content.decode()
    )
    assert Client().get(path_of(second)).status_code == 200


def test_inviting_someone_who_is_already_a_member_is_refused_clearly(
    owner: Client, tenant: Tenant
) -> None:
    member = make_user("mia", tenant, Role.MEMBER)
    member.email = "Mia@Example.com"
    member.save()
    response = owner.post(TEAM, {"email": "mia@example.COM", "role": "member"})
    assert response.status_code == 400
    assert "mia@example.com is already a member of Acme." in response.content.decode()
    assert not Invitation.objects.exists()


def test_an_invitation_needs_an_address(owner: Client) -> None:
    response = owner.post(TEAM, {"email": "not an address", "role": "member"})
    assert response.status_code == 400
    assert "Enter an email address" in response.content.decode()


# ---------------------------------------------------------------- accepting


def test_a_new_person_signs_up_from_the_link_and_lands_on_the_dashboard(
    owner: Client, tenant: Tenant
) -> None:
    link, _ = invite(owner)
    page = Client().get(path_of(link))
    assert page.status_code == 200
    text = page.content.decode()
    assert (
        "Join Acme" in text and "olivia invited" in text and "new@example.com" in text
    )

    visitor, landed = sign_up(link)
    assert landed.redirect_chain[-1][0] == "/dashboard/"
    dashboard = landed.content.decode()
    assert "Welcome to Acme: you joined as member." in dashboard
    assert "newcomer · Member" in dashboard  # logged in, looking at Acme
    user = get_user_model().objects.get(username="newcomer")
    assert user.email == "new@example.com" and user.check_password(NEW_PASSWORD)
    assert role_of(tenant, "newcomer") == Role.MEMBER
    invitation = Invitation.objects.get()
    assert invitation.accepted_at is not None and invitation.accepted_by == user
    # The link is spent, for the newcomer too.
    used = visitor.get(path_of(link))
    assert used.status_code == 410
    assert "This invitation has already been used." in used.content.decode()


def test_sign_up_refuses_a_taken_username_and_a_weak_password(
    owner: Client, tenant: Tenant
) -> None:
    link, _ = invite(owner)
    visitor = Client()
    taken = visitor.post(
        path_of(link),
        {
            "username": "Olivia",
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
        },
    )
    assert taken.status_code == 400
    assert "That username is taken" in taken.content.decode()
    weak = visitor.post(
        path_of(link),
        {"username": "newcomer", "password": "12345678", "password_again": "12345678"},
    )
    assert weak.status_code == 400 and "too common" in weak.content.decode()
    differ = visitor.post(
        path_of(link),
        {"username": "newcomer", "password": NEW_PASSWORD, "password_again": "x"},
    )
    assert "The two passwords differ." in differ.content.decode()
    assert role_of(tenant, "newcomer") is None
    assert Invitation.objects.get().accepted_at is None


def test_an_existing_user_logs_in_and_then_accepts(
    owner: Client, tenant: Tenant, outsider: Tenant
) -> None:
    elsewhere = make_user("eve", outsider, Role.OWNER)
    link, _ = invite(owner, email="eve@example.com", role=Role.ADMIN)
    visitor = Client()
    page = visitor.get(path_of(link)).content.decode()
    login_url = f"/dashboard/login/?next={path_of(link)}"
    assert f'href="{login_url}"' in page

    logged_in = visitor.post(
        login_url,
        {"username": "eve", "password": PASSWORD, "next": path_of(link)},
        follow=True,
    )
    assert logged_in.redirect_chain[-1][0] == path_of(link)
    assert "Join as eve" in logged_in.content.decode()

    joined = visitor.post(path_of(link), follow=True)
    assert joined.redirect_chain[-1][0] == "/dashboard/"
    assert "Welcome to Acme: you joined as admin." in joined.content.decode()
    assert role_of(tenant, "eve") == Role.ADMIN
    # Still in the account they had, now showing the one they joined.
    assert Membership.objects.filter(user=elsewhere).count() == 2
    assert "eve · Admin" in joined.content.decode()
    assert visitor.get(path_of(link)).status_code == 410


def test_someone_already_in_the_account_is_told_so(
    owner: Client, owner_user: Any
) -> None:
    link, _ = invite(owner)
    response = owner.post(path_of(link))
    assert response.status_code == 400
    assert "You are already a member of Acme." in response.content.decode()
    assert Invitation.objects.get().accepted_at is None


@pytest.mark.parametrize("state", ["used", "expired", "revoked", "unknown"])
def test_spent_expired_revoked_and_unknown_links_are_refused_with_a_clear_page(
    owner: Client, tenant: Tenant, state: str
) -> None:
    link, _ = invite(owner)
    invitation = Invitation.objects.get()
    if state == "used":
        sign_up(link, username="first")
    elif state == "expired":
        invitation.expires_at = timezone.now() - timedelta(seconds=1)
        invitation.save()
    elif state == "revoked":
        owner.post(f"/dashboard/team/invitations/{invitation.public_id}/revoke")
    else:
        link = link.replace(token_of(link), token_of(link)[:-4] + "AAAA")
    expected = {
        "used": (410, "This invitation has already been used."),
        "expired": (410, "This invitation expired on"),
        "revoked": (410, "This invitation was withdrawn."),
        "unknown": (404, "This invitation link is not valid."),
    }[state]
    for method in ("get", "post"):
        visitor = Client()
        response = getattr(visitor, method)(
            path_of(link),
            {
                "username": "second",
                "password": NEW_PASSWORD,
                "password_again": NEW_PASSWORD,
            },
        )
        assert response.status_code == expected[0], method
        page = response.content.decode()
        assert expected[1] in page and "<form" not in page, page
    assert not get_user_model().objects.filter(username="second").exists()


# ---------------------------------------------------------------- roles


def test_an_owner_changes_a_role_and_removes_a_member(
    owner: Client, tenant: Tenant
) -> None:
    mia = make_user("mia", tenant, Role.MEMBER)
    membership = Membership.objects.get(user=mia)
    page = owner.get(TEAM).content.decode()
    assert 'data-confirm="Change the role of mia?"' in page
    assert (
        'data-confirm="Remove mia from Acme? They lose access to it at once."' in page
    )

    changed = owner.post(
        f"/dashboard/team/members/{membership.pk}/role", {"role": "admin"}, follow=True
    )
    assert "mia is now admin." in changed.content.decode()
    assert role_of(tenant, "mia") == Role.ADMIN

    removed = owner.post(f"/dashboard/team/members/{membership.pk}/remove", follow=True)
    assert "mia was removed from Acme." in removed.content.decode()
    assert role_of(tenant, "mia") is None
    assert get_user_model().objects.filter(username="mia").exists()  # the user stays
    assert browser_for(mia).get("/dashboard/").status_code == 403  # no account left


def test_the_last_owner_can_be_neither_demoted_nor_removed(
    owner: Client, owner_user: Any, tenant: Tenant
) -> None:
    own = Membership.objects.get(user=owner_user)
    for action, data in (("role", {"role": "admin"}), ("remove", {})):
        refused = owner.post(
            f"/dashboard/team/members/{own.pk}/{action}",
            {**data, "next": TEAM},
            follow=True,
        )
        assert refused.redirect_chain[-1][0] == TEAM
        assert (
            "olivia is the account&#x27;s last owner: make someone else an owner first."
            in refused.content.decode()
        )
        assert role_of(tenant, "olivia") == Role.OWNER
    # With a second owner, the first may step down.
    make_user("oscar", tenant, Role.OWNER)
    owner.post(f"/dashboard/team/members/{own.pk}/role", {"role": "admin"})
    assert role_of(tenant, "olivia") == Role.ADMIN


def test_admins_manage_admins_and_members_but_not_owners_or_themselves(
    owner_user: Any, tenant: Tenant
) -> None:
    admin = make_user("ada", tenant, Role.ADMIN)
    mia = make_user("mia", tenant, Role.MEMBER)
    client = browser_for(admin, tenant.test)
    page = client.get(TEAM).content.decode()
    assert '<option value="owner"' not in page  # an admin cannot grant it
    own_owner = Membership.objects.get(user=owner_user)
    assert f'action="/dashboard/team/members/{own_owner.pk}/remove"' not in page

    def change(user: Any, role: str) -> str:
        membership = Membership.objects.get(user=user)
        return client.post(
            f"/dashboard/team/members/{membership.pk}/role",
            {"role": role, "next": TEAM},
            follow=True,
        ).content.decode()

    refused = client.post(TEAM, {"email": "boss@example.com", "role": "owner"})
    assert refused.status_code == 400
    assert "Choose one of the roles offered." in refused.content.decode()
    assert "Only an owner can make someone an owner" in change(mia, "owner")
    assert "Only an owner can make someone an owner" in change(owner_user, "member")
    assert "You cannot raise your own role." in change(admin, "owner")
    assert role_of(tenant, "olivia") == Role.OWNER
    assert role_of(tenant, "ada") == Role.ADMIN
    assert "mia is now admin." in change(mia, "admin")
    assert "ada is now member." in change(admin, "member")  # stepping down is fine
    assert not Invitation.objects.exists()


def test_members_see_the_team_read_only_and_cannot_change_it(
    owner: Client, owner_user: Any, tenant: Tenant
) -> None:
    invite(owner)
    invitation = Invitation.objects.get()
    member = make_user("mia", tenant, Role.MEMBER)
    client = browser_for(member, tenant.test)
    page = client.get(TEAM).content.decode()
    assert "olivia" in page and "new@example.com" in page
    assert "<select" not in page.split("<main")[1]  # no role pickers
    assert "Send invitation" not in page and "Revoke" not in page
    own_owner = Membership.objects.get(user=owner_user)
    for url, data in (
        (TEAM, {"email": "x@example.com", "role": "member"}),
        (f"/dashboard/team/members/{own_owner.pk}/role", {"role": "member"}),
        (f"/dashboard/team/members/{own_owner.pk}/remove", {}),
        (f"/dashboard/team/invitations/{invitation.public_id}/revoke", {}),
    ):
        assert client.post(url, data).status_code == 403, url
    assert role_of(tenant, "olivia") == Role.OWNER
    assert Invitation.objects.get().is_pending
    assert Invitation.objects.count() == 1


def test_another_accounts_members_and_invitations_are_invisible_and_untouchable(
    owner: Client, outsider: Tenant
) -> None:
    theirs = make_user("them", outsider, Role.OWNER)
    their_owner = browser_for(theirs, outsider.test)
    invite(their_owner, email="their-hire@example.com")
    their_invitation = Invitation.objects.get()
    their_membership = Membership.objects.get(user=theirs)

    page = owner.get(TEAM).content.decode()
    assert "them" not in page and "their-hire@example.com" not in page
    for url, data in (
        (f"/dashboard/team/members/{their_membership.pk}/role", {"role": "member"}),
        (f"/dashboard/team/members/{their_membership.pk}/remove", {}),
        (f"/dashboard/team/invitations/{their_invitation.public_id}/revoke", {}),
        ("/dashboard/team/members/not-a-number/remove", {}),
        ("/dashboard/team/invitations/not-an-id/revoke", {}),
    ):
        assert owner.post(url, data).status_code == 404, url
    assert Membership.objects.get(user=theirs).role == Role.OWNER
    assert Invitation.objects.get().is_pending


def test_staff_read_invitations_in_the_admin_without_their_token(
    owner: Client, client: Client
) -> None:
    link, _ = invite(owner)
    invitation = Invitation.objects.get()
    client.force_login(
        get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    )
    listing = client.get("/admin/accounts/invitation/").content.decode()
    assert "new@example.com" in listing
    page = client.get(f"/admin/accounts/invitation/{invitation.pk}/change/")
    text = page.content.decode()
    assert page.status_code == 200 and "new@example.com" in text
    assert invitation.token_hash not in text and token_of(link) not in text
    assert 'name="_save"' not in text
