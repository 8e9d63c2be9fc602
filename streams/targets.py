"""Where streams and status callbacks may connect (SSRF rules). No Django here.

Production refuses targets that resolve to addresses that are not publicly routable
(loopback, private, link-local…), using the webhooks' rule (``events.urlguard``); the
local and test settings allow them (``STREAM_ALLOW_PRIVATE``). Names are checked when a
stream is created and resolved again when it connects, and the connection then goes to
an address that passed, so a DNS answer that changes in between cannot steer it inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from events.urlguard import refusal

MAX_URL_LENGTH = 2048


class TargetRefused(ValueError):
    """The URL may not be connected to."""


def parse(url: str, schemes: tuple[str, ...]) -> SplitResult:
    """Check a URL's shape: scheme, host, port; raise TargetRefused."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise TargetRefused("The URL is not valid.") from None
    if parts.scheme not in schemes:
        raise TargetRefused(
            "The URL must start with " + " or ".join(f"{s}://" for s in schemes) + "."
        )
    if not parts.hostname:
        raise TargetRefused("The URL has no host.")
    if parts.fragment:
        raise TargetRefused("The URL may not have a #fragment.")
    return parts


def default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme in ("wss", "https") else 80)


def _check(host: str, addresses: list[str]) -> None:
    for address in addresses:
        reason = refusal(ipaddress.ip_address(address.split("%", 1)[0]))
        if reason is not None:
            raise TargetRefused(
                f"The host {host} resolves to {address}, a {reason} address; "
                "streams connect to public addresses only."
            )


def vet(url: str, schemes: tuple[str, ...], *, allow_private: bool) -> SplitResult:
    """Parse a URL and, unless private targets are allowed, resolve and check it."""
    parts = parse(url, schemes)
    if allow_private:
        return parts
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, default_port(parts), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"The host {host} does not resolve: {exc}.") from None
    _check(host, [str(info[4][0]) for info in infos])
    return parts


async def resolve_public(parts: SplitResult) -> str:
    """Resolve a URL's host now and return a public address to connect to."""
    host = parts.hostname or ""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host, default_port(parts), type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"{host} does not resolve: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    _check(host, addresses)
    return addresses[0]
