"""The account's team: members and their roles, invitations, and accepting one.

An invitation's link carries a token (only its hash is stored). Whoever opens it while
logged in accepts it as themselves; a visitor without a login either signs up on that
page (a username and password; the email address is the invitation's) or logs in and is
brought back to it. Either way the link works once, for seven days.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.models import Membership, Role
from config.errors import ApplicationError
from dashboard.forms import InvitationForm, MemberRoleForm, SignUpForm
from dashboard.views.pages import page
from dashboard.workspace import Workspace, dashboard_view, first_error, workspace_choose


def _invitation_form(ws: Workspace, data: Any = None) -> InvitationForm:
    return InvitationForm(data, may_grant_owner=ws.membership.role == Role.OWNER)


def _may_change(ws: Workspace, membership: Membership) -> bool:
    """Whether the page offers to change or remove this member (services decide)."""
    if not ws.can_manage:
        return False
    return ws.membership.role == Role.OWNER or membership.role != Role.OWNER


@never_cache
@require_http_methods(["GET", "POST"])
@dashboard_view()
def team(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = _invitation_form(ws)
    issued = None
    if request.method == "POST":
        if not ws.can_manage:
            raise PermissionDenied("Only owners and admins can invite people.")
        form = _invitation_form(ws, request.POST)
        if form.is_valid():
            try:
                # The link is rendered here and never stored: only its hash is kept.
                issued = account_services.invitation_create(
                    account=ws.account,
                    invited_by=request.user,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    link_for=lambda token: request.build_absolute_uri(
                        reverse("dashboard:invitation", args=[token])
                    ),
                )
            except ApplicationError as error:
                form.add_error(
                    "email" if error.param == "email" else None, error.detail
                )
            else:
                form = _invitation_form(ws)
    members = [
        (membership, _may_change(ws, membership))
        for membership in account_selectors.membership_list(ws.account)
    ]
    return page(
        request,
        ws,
        "dashboard/team.html",
        {
            "members": members,
            "invitations": account_selectors.invitation_pending_list(ws.account),
            "form": form,
            "issued": issued,
            "roles": form.fields["role"].choices,  # type: ignore[attr-defined]
        },
        section="team",
        status=400 if form.errors else 200,
    )


@require_POST
@dashboard_view(manage=True)
def member_role(request: HttpRequest, ws: Workspace, member_id: int) -> HttpResponse:
    membership = account_selectors.membership_get(ws.account, member_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect("dashboard:team")
    account_services.membership_change_role(
        membership=membership, role=form.cleaned_data["role"], by=request.user
    )
    messages.success(
        request,
        f"{membership.user.get_username()} is now "
        f"{membership.get_role_display().lower()}.",
    )
    return redirect("dashboard:team")


@require_POST
@dashboard_view(manage=True)
def member_remove(request: HttpRequest, ws: Workspace, member_id: int) -> HttpResponse:
    membership = account_selectors.membership_get(ws.account, member_id)
    account_services.membership_remove(membership=membership, by=request.user)
    name = membership.user.get_username()
    if membership.user_id == request.user.pk:
        messages.success(request, f"You left {ws.account.name}.")
        return redirect("dashboard:overview")
    messages.success(request, f"{name} was removed from {ws.account.name}.")
    return redirect("dashboard:team")


@require_POST
@dashboard_view(manage=True)
def invitation_revoke(
    request: HttpRequest, ws: Workspace, invitation_id: str
) -> HttpResponse:
    invitation = account_services.invitation_revoke(
        invitation=account_selectors.invitation_get(ws.account, invitation_id),
        by=request.user,
    )
    messages.success(
        request,
        f"The invitation to {invitation.email} was withdrawn; its link no longer works.",
    )
    return redirect("dashboard:team")


# ---------------------------------------------------------------- the invitation's link


def _unusable(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    return render(
        request,
        "dashboard/invitation_invalid.html",
        {"error": error},
        status=error.status,
    )


def _join(request: HttpRequest, token: str, form: SignUpForm) -> Membership | None:
    """Accept as the logged-in user, or sign up and log in (None: the form has errors)."""
    if request.user.is_authenticated:
        return account_services.invitation_accept(token=token, user=request.user)
    if not form.is_valid():
        return None
    membership = account_services.invitation_sign_up(
        token=token,
        username=form.cleaned_data["username"],
        password=form.cleaned_data["password"],
    )
    auth_login(request, membership.user)
    return membership


@never_cache
@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The page an invitation's link opens: accept it, or sign up and accept it."""
    try:
        found = account_selectors.invitation_by_token(token)
    except ApplicationError as error:
        return _unusable(request, error)
    form = SignUpForm(email=found.email)
    refusal = None
    if request.method == "POST":
        if not request.user.is_authenticated:
            form = SignUpForm(request.POST, email=found.email)
        try:
            membership = _join(request, token, form)
        except ApplicationError as error:
            if error.param in form.fields:
                form.add_error(error.param, error.detail)
            elif error.status in (404, 410):
                return _unusable(request, error)
            else:
                refusal = error.detail
        else:
            if membership is not None:
                environment = account_selectors.environment_of(found.account, "test")
                workspace_choose(request, environment.public_id)
                messages.success(
                    request,
                    f"Welcome to {found.account.name}: you joined as "
                    f"{membership.get_role_display().lower()}.",
                )
                return redirect("dashboard:overview")
    return render(
        request,
        "dashboard/invitation.html",
        {"invitation": found, "form": form, "refusal": refusal},
        status=200 if request.method == "GET" else 400,
    )
