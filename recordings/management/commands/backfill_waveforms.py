from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recordings import services


class Command(BaseCommand):
    help = (
        "Compute the waveforms of recordings finalised before waveforms existed (or "
        "whose waveform could not be computed then), reading each stored WAV once. "
        "Safe to run while the server finalises new recordings, and to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=100,
            help="Recordings read per batch (default: 100).",
        )

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        self.stdout.write("Computing missing waveforms…")

        def progress(done: int, failed: int, total: int) -> None:
            line = f"  {done + failed}/{total} recordings"
            self.stdout.write(
                line + (f" ({failed} unreadable for now)" if failed else "")
            )

        done, failed = services.recordings_backfill_waveforms(
            batch_size=batch_size, progress=progress
        )
        self.stdout.write(self.style.SUCCESS(f"Computed {done} waveform(s)."))
        if failed:
            self.stdout.write(
                self.style.WARNING(
                    f"{failed} recording(s) could not be read; run again to retry them."
                )
            )
