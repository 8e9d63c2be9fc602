"""A SIP session's settings object (DESIGN §11.1), its addresses, and what the API shows.

The API parses camelCase into snake_case before the carrier sees a settings object; the
names in refusals (``param``) are the API's own (``sip.authUsername``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.errors import InvalidRequest

CODECS = ("opus", "g722", "pcmu", "pcma")
DEFAULT_CODECS = ("pcmu", "pcma")
TRANSPORTS = ("udp", "tcp", "tls")
# The stack's names for the codecs: a bare name means 8 kHz.
CODEC_SPECS = {
    "opus": "opus/48000/2",
    "g722": "g722/16000/1",
    "pcmu": "pcmu",
    "pcma": "pcma",
}

E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9-]{1,63}$"
)
USER_RE = re.compile(r"^[A-Za-z0-9+._~!$&'()*,;=-]{1,64}$")
SIP_URI_RE = re.compile(
    r"^sips?:(?P<user>[A-Za-z0-9+._~!$&'()*,;=%-]{1,64})@(?P<host>[A-Za-z0-9.-]{1,253})"
    r"(?::(?P<port>\d{1,5}))?(?P<params>(?:;[A-Za-z0-9=._-]+)*)$"
)
SHOWN = ("server", "transport", "username", "auth_username", "from_number", "register")


@dataclass(frozen=True)
class SipSettings:
    server: str
    transport: str
    username: str
    auth_username: str
    from_number: str
    register: bool
    codecs: tuple[str, ...]
    password: str

    @property
    def host(self) -> str:
        return self.server.rsplit(":", 1)[0] if ":" in self.server else self.server


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _refuse(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=f"sip.{_camel(field)}")


def check_server(value: object) -> str:
    text = str(value or "").strip()
    host, _, port = text.partition(":")
    if not text or not HOST_RE.match(host):
        raise _refuse("server", "Give the trunk's SIP server as host[:port].")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise _refuse("server", "The server's port must be 1 to 65535.")
    return text


def validate(
    raw: Mapping[str, Any] | None,
    current: Mapping[str, Any] | None,
    current_secrets: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a settings object (omitted fields keep ``current``); ``(shown, secrets)``."""
    if raw is None:
        raise InvalidRequest(
            "A SIP session needs its settings object `sip`.", param="sip"
        )
    unknown = set(raw) - {*SHOWN, "password", "codecs"}
    if unknown:
        name = sorted(unknown)[0]
        raise _refuse(name, f"Unknown SIP setting {_camel(name)!r}.")
    shown: dict[str, Any] = dict(current or {})
    secrets: dict[str, Any] = dict(current_secrets or {})
    merged = {**shown, **raw}

    shown["server"] = check_server(merged.get("server"))
    transport = str(merged.get("transport") or "udp").lower()
    if transport not in TRANSPORTS:
        raise _refuse("transport", "transport is one of udp, tcp, tls.")
    shown["transport"] = transport
    username = str(merged.get("username") or "").strip()
    if not USER_RE.match(username):
        raise _refuse(
            "username", "Give the SIP username (the user part of the line's address)."
        )
    shown["username"] = username
    auth_username = str(merged.get("auth_username") or "").strip()
    if auth_username and not USER_RE.match(auth_username):
        raise _refuse(
            "auth_username",
            "The authentication username has characters SIP does not allow.",
        )
    shown["auth_username"] = auth_username
    from_number = str(merged.get("from_number") or "").strip()
    if from_number and not E164_RE.match(from_number):
        raise _refuse(
            "from_number", "fromNumber is an E.164 number such as +15551230000."
        )
    shown["from_number"] = from_number
    register = merged.get("register", True)
    if not isinstance(register, bool):
        raise _refuse(
            "register",
            "register is true (REGISTER) or false (an IP-authenticated trunk).",
        )
    shown["register"] = register
    codecs = merged.get("codecs", list(DEFAULT_CODECS))
    if (
        not isinstance(codecs, list | tuple)
        or not codecs
        or any(codec not in CODECS for codec in codecs)
        or len(set(codecs)) != len(codecs)
    ):
        raise _refuse(
            "codecs",
            f"codecs is an ordered list of distinct codecs among {', '.join(CODECS)}.",
        )
    shown["codecs"] = list(codecs)

    if "password" in raw:
        password = str(raw["password"] or "")
        if password:
            secrets["password"] = password
        else:
            secrets.pop("password", None)
    if shown["register"] and not secrets.get("password"):
        raise _refuse("password", "A registering trunk needs its password.")
    return shown, secrets


def describe(shown: Mapping[str, Any], secrets: Mapping[str, Any]) -> dict[str, Any]:
    """The settings object the API returns: everything but the password."""
    return {
        "server": shown.get("server"),
        "transport": shown.get("transport", "udp"),
        "username": shown.get("username"),
        "authUsername": shown.get("auth_username") or None,
        "fromNumber": shown.get("from_number") or None,
        "register": shown.get("register", True),
        "codecs": list(shown.get("codecs") or DEFAULT_CODECS),
        "hasPassword": bool(secrets.get("password")),
    }


def parse(shown: Mapping[str, Any], secrets: Mapping[str, Any]) -> SipSettings:
    return SipSettings(
        server=str(shown["server"]),
        transport=str(shown.get("transport") or "udp"),
        username=str(shown["username"]),
        auth_username=str(shown.get("auth_username") or ""),
        from_number=str(shown.get("from_number") or ""),
        register=bool(shown.get("register", True)),
        codecs=tuple(shown.get("codecs") or DEFAULT_CODECS),
        password=str(secrets.get("password") or ""),
    )


def normalize_address(to: str) -> str:
    """An E.164 number (spaces, dashes and dots allowed) or a ``sip:`` URI."""
    text = str(to or "").strip()
    if text.lower().startswith(("sip:", "sips:")):
        if not SIP_URI_RE.match(text):
            raise InvalidRequest(
                "A SIP URI looks like sip:alice@example.com[:port].", param="to"
            )
        return text
    number = re.sub(r"[\s().-]", "", text)
    if not E164_RE.match(number):
        raise InvalidRequest(
            "Call an E.164 number (+15551234567) or a SIP URI (sip:alice@example.com).",
            param="to",
        )
    return number


def request_uri(to: str, settings: SipSettings) -> str:
    """Where an INVITE for ``to`` goes: a number through the trunk's server."""
    if to.lower().startswith(("sip:", "sips:")):
        return to
    return f"sip:{to}@{settings.server};transport={settings.transport}"
