"""Re-encrypt every session's carrier credentials with the first configured key."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from calls.credentials import CredentialsUnreadable, derived_key
from calls.services import sessions_reseal_credentials


class Command(BaseCommand):
    help = (
        "Re-encrypt carrier credentials with the first key of "
        "SWITCHBOARD_CREDENTIALS_KEY (run after putting a new key first)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--print-derived-key",
            action="store_true",
            help="Print the key derived from SECRET_KEY (to keep it when rotating "
            "SECRET_KEY) and exit.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["print_derived_key"]:
            self.stdout.write(derived_key(settings.SECRET_KEY).decode())
            return
        keys = len(settings.SWITCHBOARD_CREDENTIALS_KEYS)
        self.stdout.write(
            f"Re-encrypting with the first of {keys} configured key(s)"
            if keys
            else "Re-encrypting with the key derived from SECRET_KEY"
        )
        try:
            count = sessions_reseal_credentials(
                progress=lambda done: self.stdout.write(f"  {done} sessions so far")
            )
        except CredentialsUnreadable as exc:
            raise CommandError(
                f"{exc} Keep the old key in SWITCHBOARD_CREDENTIALS_KEY (after the new "
                "one) until this command has run."
            ) from exc
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} session(s)."))
