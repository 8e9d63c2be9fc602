"""API key format: ``sb_<env>_`` + 40 base62 random characters + a 6-character checksum.

The checksum (CRC-32 of everything before it, in base62) lets a typo or a truncated paste be
refused without a database lookup; CRC-32 detects every single-character change.
Only the SHA-256 of the whole key is ever stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from dataclasses import dataclass

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 40
CHECKSUM_LENGTH = 6
ENVIRONMENT_KINDS = ("live", "test")
KEY_RE = re.compile(
    rf"^sb_(live|test)_([0-9A-Za-z]{{{RANDOM_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})$"
)


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        chars.append(ALPHABET[remainder])
    return "".join(reversed(chars))


def checksum(body: str) -> str:
    """Return the 6-character checksum of a key's ``sb_<env>_<random>`` part."""
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


@dataclass(frozen=True)
class ParsedKey:
    environment_kind: str
    full: str

    @property
    def hash(self) -> str:
        return hash_key(self.full)

    @property
    def display_prefix(self) -> str:
        """The environment prefix: no character of the random part is ever kept."""
        return f"sb_{self.environment_kind}_"

    @property
    def last4(self) -> str:
        """The last 4 characters, which belong to the checksum, not the random part."""
        return self.full[-4:]


def generate(environment_kind: str) -> ParsedKey:
    """Return a fresh key for an environment kind (``live`` or ``test``)."""
    if environment_kind not in ENVIRONMENT_KINDS:
        raise ValueError(f"unknown environment kind {environment_kind!r}")
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    body = f"sb_{environment_kind}_{random_part}"
    return ParsedKey(environment_kind, body + checksum(body))


def parse(candidate: str) -> ParsedKey | None:
    """Return the parsed key if it has the right shape and checksum, else None."""
    match = KEY_RE.match(candidate)
    if match is None:
        return None
    body = candidate[:-CHECKSUM_LENGTH]
    if not secrets.compare_digest(checksum(body), match.group(3)):
        return None
    return ParsedKey(match.group(1), candidate)


def hash_key(full_key: str) -> str:
    return hashlib.sha256(full_key.encode("ascii")).hexdigest()
