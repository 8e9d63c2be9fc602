"""Who is looking at what: the logged-in user's chosen account environment.

Every dashboard view runs through ``dashboard_view``: it requires a login, resolves the
environment stored in the login session (``DASHBOARD_ENVIRONMENT_KEY``) through the user's
membership, refuses manage actions to members, and turns the apps' errors into pages:
``NotFound`` (another tenant's or environment's object, too) into 404, the rest into a
message on the page the user came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, Concatenate, ParamSpec

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.models import Account, Environment, Membership
from accounts.selectors import (
    DASHBOARD_ENVIRONMENT_KEY,
    environment_of,
    membership_environment,
    memberships_of,
)
from config.errors import ApplicationError, NotFound

P = ParamSpec("P")


@dataclass(frozen=True)
class Workspace:
    """The environment a dashboard user works in, and their role in its account."""

    environment: Environment
    membership: Membership

    @property
    def account(self) -> Account:
        return self.environment.account

    @property
    def can_manage(self) -> bool:
        return self.membership.can_manage

    @property
    def is_test(self) -> bool:
        return self.environment.is_test


def workspace_choose(request: HttpRequest, environment_public_id: object) -> Workspace:
    """Make an environment of one of the user's accounts the one the dashboard shows."""
    found = membership_environment(request.user, environment_public_id)
    if found is None or not found[0].account.is_active:
        raise NotFound("No such environment.", code="environment_not_found")
    request.session[DASHBOARD_ENVIRONMENT_KEY] = str(found[0].public_id)
    return Workspace(*found)


def workspace_of(request: HttpRequest) -> Workspace | None:
    """The user's chosen environment; the first account's test environment by default."""
    chosen = request.session.get(DASHBOARD_ENVIRONMENT_KEY)
    found = membership_environment(request.user, chosen) if chosen else None
    if found is not None and found[0].account.is_active:
        return Workspace(*found)
    membership = memberships_of(request.user).filter(account__is_active=True).first()
    if membership is None:
        return None
    environment = environment_of(membership.account, "test")
    request.session[DASHBOARD_ENVIRONMENT_KEY] = str(environment.public_id)
    return Workspace(environment, membership)


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def back_url(request: HttpRequest, default: str = "dashboard:overview") -> str:
    """Where a form came from (this site only), to return to with a message."""
    for candidate in (request.POST.get("next"), request.headers.get("Referer")):
        if candidate and url_has_allowed_host_and_scheme(
            candidate,
            allowed_hosts={request.get_host()},
            require_https=request.is_secure(),
        ):
            return candidate
    return reverse(default)


def refusal(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    """Tell the user why an action was refused: JSON for scripts, a message for forms."""
    if wants_json(request):
        return JsonResponse(
            {"error": {"code": error.code, "detail": error.detail}},
            status=error.status,
        )
    if request.headers.get("HX-Request"):
        return HttpResponse(error.detail, status=error.status)
    messages.error(request, error.detail)
    return redirect(back_url(request))


DashboardView = Callable[Concatenate[HttpRequest, Workspace, P], HttpResponseBase]
View = Callable[Concatenate[HttpRequest, P], HttpResponseBase]


def dashboard_view(*, manage: bool = False) -> Callable[[DashboardView[P]], View[P]]:
    """Wrap a view taking ``(request, workspace, …)``; ``manage`` needs owner or admin."""

    def decorate(view: DashboardView[P]) -> View[P]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> Any:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            workspace = workspace_of(request)
            if workspace is None:
                return render(request, "dashboard/no_account.html", status=403)
            if manage and not workspace.can_manage:
                raise PermissionDenied("Only owners and admins can do this.")
            try:
                return view(request, workspace, *args, **kwargs)
            except NotFound as missing:
                raise Http404(missing.detail) from missing
            except ApplicationError as error:
                return refusal(request, error)

        return wrapper

    return decorate


def first_error(form: Any) -> str:
    """The first of a form's error messages, for a one-line refusal."""
    for errors in form.errors.values():
        for error in errors:
            return str(error)
    return "The form is not valid."
