"""Bearer API-key authentication: resolves the key's environment into the request once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from config.errors import Unauthenticated

if TYPE_CHECKING:
    from accounts.models import ApiKey, Environment


@dataclass(frozen=True)
class ApiPrincipal:
    """Who is calling: an API key of one environment."""

    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def environment(self) -> Environment:
        return self.api_key.environment


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# Why a presented key is refused, by code: what the client reads, on every surface.
KEY_REFUSALS = {
    "missing_api_key": "Send your API key as `Authorization: Bearer <key>`.",
    "invalid_api_key": "The API key is not valid.",
    "revoked_api_key": "The API key has been revoked.",
    "account_disabled": "The account is disabled.",
}


def key_refused(code: str) -> Unauthenticated:
    return Unauthenticated(KEY_REFUSALS[code], code=code)


def authenticate_key(token: str | None) -> ApiKey:
    """Return the active key for a presented token or raise Unauthenticated."""
    from accounts import selectors, services

    if token is None:
        raise key_refused("missing_api_key")
    api_key = selectors.api_key_by_secret(token)
    if api_key is None:
        raise key_refused("invalid_api_key")
    if api_key.revoked_at is not None:
        raise key_refused("revoked_api_key")
    if not api_key.environment.account.is_active:
        raise key_refused("account_disabled")
    services.api_key_touch(api_key=api_key)
    return api_key


# Presenting a wrong or revoked key: one address gets this many tries a minute, then
# 429 before any key is looked at (guessing keys is slowed to a crawl).
GUESSES = ("invalid_api_key", "revoked_api_key")


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiPrincipal, ApiKey]:
        from django.conf import settings

        from config.api import ratelimit
        from config.api.errors import rate_limited

        address = f"badkey:{request.META.get('REMOTE_ADDR') or 'unknown'}"
        limit = settings.API_BAD_KEY_LIMIT_PER_MINUTE
        if ratelimit.count_of(address) >= limit:
            raise rate_limited(ratelimit.WINDOW_SECONDS)
        try:
            api_key = authenticate_key(
                bearer_token(request.headers.get("Authorization"))
            )
        except Unauthenticated as refusal:
            if refusal.code in GUESSES:
                ratelimit.hit(address)
            raise
        return ApiPrincipal(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class HasEnvironment(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, ApiPrincipal)


def environment_of(request: Request) -> Environment:
    principal = request.user
    if not isinstance(principal, ApiPrincipal):
        raise Unauthenticated()
    return principal.environment
