"""Carrier credentials at rest: Fernet tokens, with key rotation through several keys.

``SWITCHBOARD_CREDENTIALS_KEY`` holds one or more Fernet keys, comma separated: the first
encrypts, every one decrypts, so a new key is put first and the old ones stay until
``manage.py rotate_credentials`` has re-encrypted every session. Without it, one key is
derived from ``SECRET_KEY`` (rotating ``SECRET_KEY`` then needs the derived key kept:
``manage.py rotate_credentials --print-derived-key`` prints it).
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialsUnreadable(Exception):
    """No configured key opens these credentials."""


def derived_key(secret_key: str) -> bytes:
    digest = hashlib.sha256(b"switchboard-credentials:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    material = [key.encode() for key in keys if key] or [derived_key(secret_key)]
    return MultiFernet([Fernet(key) for key in material])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.SWITCHBOARD_CREDENTIALS_KEYS), settings.SECRET_KEY)


def seal(secrets: dict[str, Any]) -> str:
    """Encrypt a carrier's secrets; an empty dict is stored as an empty string."""
    if not secrets:
        return ""
    return fernet().encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()


def unseal(token: str) -> dict[str, Any]:
    """Decrypt what ``seal`` stored."""
    if not token:
        return {}
    try:
        return dict(json.loads(fernet().decrypt(token.encode())))
    except InvalidToken as exc:
        raise CredentialsUnreadable(
            "No key in SWITCHBOARD_CREDENTIALS_KEY decrypts these credentials."
        ) from exc


def reseal(token: str) -> str:
    """Re-encrypt with the first key (rotation); the same secrets come back out."""
    if not token:
        return ""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise CredentialsUnreadable(
            "No key in SWITCHBOARD_CREDENTIALS_KEY decrypts these credentials."
        ) from exc
