"""System checks: the carriers a deployment enables exist, and credential keys are keys."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register()
def carriers_configured(**_: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    unknown = [
        name for name in settings.SWITCHBOARD_CARRIERS if name not in settings.CARRIERS
    ]
    if unknown:
        errors.append(
            checks.Error(
                f"SWITCHBOARD_CARRIERS names unknown carriers: {', '.join(unknown)}.",
                hint=f"Known carriers: {', '.join(settings.CARRIERS)}.",
                id="switchboard.E001",
            )
        )
    if not settings.SWITCHBOARD_CARRIERS:
        errors.append(
            checks.Error(
                "SWITCHBOARD_CARRIERS is empty: live sessions could use no carrier.",
                id="switchboard.E002",
            )
        )
    from cryptography.fernet import Fernet

    for index, key in enumerate(settings.SWITCHBOARD_CREDENTIALS_KEYS):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            errors.append(
                checks.Error(
                    f"Key {index + 1} of SWITCHBOARD_CREDENTIALS_KEY is not a Fernet key.",
                    hint="Make one with: python -c 'from cryptography.fernet import "
                    "Fernet; print(Fernet.generate_key().decode())'",
                    id="switchboard.E003",
                )
            )
    return errors


@checks.register(deploy=True)
def public_url_configured(**_: Any) -> list[checks.CheckMessage]:
    """Meta must reach a WhatsApp line's webhook: the public URL must be set and https."""
    if "whatsapp" not in settings.SWITCHBOARD_CARRIERS:
        return []
    url = settings.SWITCHBOARD_PUBLIC_URL
    if not url.startswith("https://") or "127.0.0.1" in url or "localhost" in url:
        return [
            checks.Warning(
                f"SWITCHBOARD_PUBLIC_URL is {url!r}: Meta can only call a public "
                "https:// webhook URL, which WhatsApp sessions show from it.",
                hint="Set SWITCHBOARD_PUBLIC_URL=https://switchboard.example.com.",
                id="switchboard.W001",
            )
        ]
    return []
