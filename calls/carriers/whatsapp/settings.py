"""A WhatsApp session's settings object (DESIGN §11.2), its addresses, and what is shown.

The API parses camelCase into snake_case before the carrier sees a settings object; the
names in refusals (``param``) are the API's own (``whatsapp.phoneNumberId``). The access
token and the app secret are secrets (stored encrypted, never returned); the verify token
is generated once, when the session is created, and shown to its owner with the webhook
URL to give Meta.
"""

from __future__ import annotations

import re
import secrets as random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from config.errors import InvalidRequest

PHONE_NUMBER_ID_RE = re.compile(r"^\d{5,20}$")
E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
SHOWN = ("phone_number_id", "graph_api_base")
SECRETS = ("access_token", "app_secret")
TOKEN_RE = re.compile(r"^[\x21-\x7e]{8,1024}$")


@dataclass(frozen=True)
class WhatsAppSettings:
    phone_number_id: str
    graph_api_base: str
    access_token: str
    app_secret: str
    verify_token: str


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _refuse(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=f"whatsapp.{_camel(field)}")


def check_graph_api_base(value: object, *, resolve: bool = True) -> str:
    """An absolute http(s) URL without query; production: https to a public host
    (resolved now, unless ``resolve`` is off: the deployment's default, a kept value)."""
    from events import urlguard

    text = str(value or "").strip().rstrip("/")
    allow_private = settings.WHATSAPP_ALLOW_PRIVATE_GRAPH or not resolve
    try:
        parts = urlguard.parse(text, allow_http=allow_private)
    except urlguard.UrlRefused as refused:
        raise _refuse("graph_api_base", f"graphApiBase: {refused}") from None
    if parts.query or parts.fragment:
        raise _refuse(
            "graph_api_base", "graphApiBase is a base URL, without query or fragment."
        )
    if not allow_private:
        try:
            urlguard.vet(text, allow_http=False, allow_private=False)
        except urlguard.UrlRefused as refused:
            raise _refuse("graph_api_base", f"graphApiBase: {refused}") from None
    return text


def validate(
    raw: Mapping[str, Any] | None,
    current: Mapping[str, Any] | None,
    current_secrets: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a settings object (omitted fields keep ``current``); ``(shown, secrets)``."""
    if raw is None:
        raise InvalidRequest(
            "A WhatsApp session needs its settings object `whatsapp`.",
            param="whatsapp",
        )
    unknown = set(raw) - {*SHOWN, *SECRETS}
    if unknown:
        name = sorted(unknown)[0]
        raise _refuse(name, f"Unknown WhatsApp setting {_camel(name)!r}.")
    shown: dict[str, Any] = dict(current or {})
    stored: dict[str, Any] = dict(current_secrets or {})
    merged = {**shown, **raw}

    number_id = str(merged.get("phone_number_id") or "").strip()
    if not PHONE_NUMBER_ID_RE.match(number_id):
        raise _refuse(
            "phone_number_id",
            "Give the phone number ID from the WhatsApp Manager (digits, not the "
            "phone number itself).",
        )
    shown["phone_number_id"] = number_id
    default = settings.WHATSAPP_GRAPH_API_BASE.rstrip("/")
    base = str(merged.get("graph_api_base") or default).strip().rstrip("/")
    kept = base == default or base == (current or {}).get("graph_api_base")
    shown["graph_api_base"] = check_graph_api_base(base, resolve=not kept)
    for name in SECRETS:
        if name not in raw:
            continue
        value = str(raw[name] or "").strip()
        if value and not TOKEN_RE.match(value):
            raise _refuse(name, f"{_camel(name)} has characters a token never has.")
        if value:
            stored[name] = value
        else:
            stored.pop(name, None)
    for name in SECRETS:
        if not stored.get(name):
            what = "access token" if name == "access_token" else "app secret"
            raise _refuse(name, f"A WhatsApp session needs its {what}.")
    # Generated once; Meta is given it with the webhook URL.
    shown["verify_token"] = shown.get("verify_token") or random.token_urlsafe(24)
    return shown, stored


def webhook_path(session_id: str) -> str:
    return f"/carriers/whatsapp/{session_id}/webhook"


def webhook_url(session_id: str) -> str:
    return settings.SWITCHBOARD_PUBLIC_URL.rstrip("/") + webhook_path(session_id)


def describe(
    shown: Mapping[str, Any], secrets: Mapping[str, Any], session_id: str
) -> dict[str, Any]:
    """The settings object the API returns: no secret, the token's last four only."""
    token = str(secrets.get("access_token") or "")
    return {
        "phoneNumberId": shown.get("phone_number_id"),
        "graphApiBase": shown.get("graph_api_base"),
        "hasAccessToken": bool(token),
        "accessTokenLast4": token[-4:] if len(token) >= 12 else None,
        "hasAppSecret": bool(secrets.get("app_secret")),
        "verifyToken": shown.get("verify_token"),
        "webhookUrl": webhook_url(session_id) if session_id else None,
    }


def parse(shown: Mapping[str, Any], secrets: Mapping[str, Any]) -> WhatsAppSettings:
    return WhatsAppSettings(
        phone_number_id=str(shown["phone_number_id"]),
        graph_api_base=str(
            shown.get("graph_api_base") or settings.WHATSAPP_GRAPH_API_BASE
        ),
        access_token=str(secrets.get("access_token") or ""),
        app_secret=str(secrets.get("app_secret") or ""),
        verify_token=str(shown.get("verify_token") or ""),
    )


def normalize_address(to: str) -> str:
    """A WhatsApp user is called by phone number: E.164 (spaces, dashes, dots allowed)."""
    text = re.sub(r"[\s().-]", "", str(to or "").strip())
    if text.isdigit():
        text = "+" + text
    if not E164_RE.match(text):
        raise InvalidRequest(
            "Call a WhatsApp user by phone number in E.164, such as +15551234567.",
            param="to",
        )
    return text


def wa_id(address: str) -> str:
    """The Graph API's form of a number: digits, no ``+``."""
    return address.lstrip("+")
