from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from recordings import services


class Command(BaseCommand):
    help = (
        "Delete recordings past their expiry (files, then rows) in batches, and "
        "finalise spooled recordings that ended calls left behind. Safe to run while "
        "the server (or Celery beat) purges too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=settings.RECORDING_PURGE_BATCH,
            help="Recordings deleted per batch (default: RECORDING_PURGE_BATCH).",
        )

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        self.stdout.write("Purging expired recordings…")

        def progress(total: int) -> None:
            self.stdout.write(f"  {total} deleted so far")

        purged = services.recordings_purge_expired(
            batch_size=batch_size, progress=progress
        )
        self.stdout.write(self.style.SUCCESS(f"Purged {purged} expired recording(s)."))
        finalised = services.recordings_finalise_leftovers()
        if finalised:
            self.stdout.write(
                f"Finalised the spooled recordings of {finalised} ended call(s)."
            )
