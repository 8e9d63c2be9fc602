"""Inviting someone in headless Chromium: the owner copies the link the Team page shows
once, a newcomer opens it in a browser of their own, signs up and lands on the dashboard
as a member, and the owner's Team page lists them. No page breaks its CSP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from accounts.models import Invitation, Membership, Role
from conftest import LiveServer, Tenant
from dashboard.tests.conftest import PASSWORD, BrowserThread, Tab, make_user
from dashboard.tests.test_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

NEW_PASSWORD = "a-long-and-unusual-passphrase-42"


@pytest.fixture
def newcomer_tab(chromium: BrowserThread, asgi_server: LiveServer) -> Iterator[Tab]:
    """A second browser profile: no cookie of the owner's."""
    opened = Tab(chromium, asgi_server.url)
    yield opened
    violations = list(opened.csp_violations)
    opened.close()
    assert violations == [], violations


def invite_and_copy_the_link(page: Any, email: str) -> str:
    page.click("nav >> text=Team")
    page.wait_for_url("**/dashboard/team/")
    page.fill("#id_email", email)
    page.select_option("#id_role", "member")
    page.click("text=Send invitation")
    link = page.locator("[data-testid=invitation-link]").input_value()
    page.click("button[data-copy='#invitation-link']")
    page.wait_for_selector("button:text('Copied')")
    copied = str(page.evaluate("navigator.clipboard.readText()"))
    assert copied == link
    return copied


def sign_up_from_the_link(page: Any, link: str, username: str) -> dict[str, str]:
    page.goto(link)
    assert "Join Acme" in page.locator("h1").inner_text()
    page.fill("#id_username", username)
    page.fill("#id_password", NEW_PASSWORD)
    page.fill("#id_password_again", NEW_PASSWORD)
    page.click("[data-testid=sign-up]")
    page.wait_for_url("**/dashboard/")
    return {
        "message": page.locator(".messages").inner_text(),
        "who": page.locator(".who").inner_text(),
        "environment": page.locator("[data-testid=env-badge]").inner_text(),
    }


def the_team_page(page: Any) -> dict[str, Any]:
    page.goto("/dashboard/team/")
    row = page.locator("#members-table tr", has_text="newcomer")
    return {
        "member": row.inner_text(),
        "role": row.locator("select").input_value(),
        "pending": page.locator("#invitations-table tbody").inner_text(),
        "link_shown": page.locator("[data-testid=invitation-link]").count(),
    }


def test_an_invited_newcomer_signs_up_from_the_copied_link(
    tab: Tab, newcomer_tab: Tab, tenant: Tenant, asgi_server: LiveServer
) -> None:
    owner = make_user("olivia", tenant, Role.OWNER)
    tab.do(log_in, owner.username, PASSWORD)
    link = tab.do(invite_and_copy_the_link, "new@example.com")
    assert link.startswith(f"{asgi_server.url}/dashboard/invitations/")

    landed = newcomer_tab.do(sign_up_from_the_link, link, "newcomer")
    assert "Welcome to Acme: you joined as member." in landed["message"]
    assert landed["who"] == "newcomer · Member"
    assert landed["environment"] == "TEST"
    membership = Membership.objects.get(user__username="newcomer")
    assert membership.account == tenant.account and membership.role == Role.MEMBER
    assert membership.user.email == "new@example.com"

    team = tab.do(the_team_page)
    assert "new@example.com" in team["member"] and team["role"] == "member"
    assert "No pending invitations." in team["pending"]
    assert team["link_shown"] == 0
    assert Invitation.objects.get().accepted_by == membership.user
