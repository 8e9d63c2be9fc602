"""Which webhook URLs the platform may call (SSRF rules). No Django here.

Production refuses plain ``http://`` and any host that resolves to an address that is not
publicly routable (loopback, private, link-local, carrier-grade NAT, multicast, reserved…).
Every address a name resolves to is checked, at creation and again before each attempt,
and the attempt then connects to an address that passed, so a DNS answer that changes in
between (rebinding) cannot steer a delivery inside.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValueError):
    """The URL may not receive webhooks; ``code`` says why, stably."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class UrlUnresolvable(UrlRefused):
    """The host name does not resolve (right now)."""


@dataclass(frozen=True)
class Target:
    """A vetted URL: its parts and the addresses it may be reached at, in order."""

    url: str
    parts: SplitResult
    host: str
    port: int
    addresses: tuple[str, ...]


def parse(url: str, *, allow_http: bool) -> SplitResult:
    """Check a URL's shape (scheme, host); raise UrlRefused."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(
            f"The URL is longer than {MAX_URL_LENGTH} characters.", "url_too_long"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UrlRefused("The URL is not valid.", "invalid_url") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise UrlRefused(
            "The URL must start with https://."
            if not allow_http
            else "The URL must start with https:// or http://.",
            "url_scheme_not_allowed",
        )
    if not parts.hostname:
        raise UrlRefused("The URL has no host.", "invalid_url")
    if parts.fragment:
        raise UrlRefused("The URL may not have a #fragment.", "invalid_url")
    return parts


def refusal(address: IPAddress) -> str | None:
    """Why an address may not be called, or None if it is publicly routable."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private:
        return "private"
    if address.is_multicast:
        return "multicast"
    if not address.is_global:
        return "not publicly routable"
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IP literals resolve to themselves)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlUnresolvable(
            f"The host {host} does not resolve: {exc}.", "url_unresolvable"
        ) from None
    addresses = [str(info[4][0]) for info in infos]
    return list(dict.fromkeys(addresses))


def vet(url: str, *, allow_http: bool, allow_private: bool) -> Target:
    """Parse, resolve and check a URL; return where it may be called or raise."""
    parts = parse(url, allow_http=allow_http)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = refusal(ipaddress.ip_address(address.split("%", 1)[0]))
            if reason is not None:
                raise UrlRefused(
                    f"The URL's host {host} resolves to {address}, a {reason} "
                    "address; webhooks go to public addresses only.",
                    "url_not_public",
                )
    return Target(
        url=url, parts=parts, host=host, port=port, addresses=tuple(addresses)
    )
