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
