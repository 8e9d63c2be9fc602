"""The recording spool: one directory of WAVs per call, written while the call runs.

Servers write it, the finalisation (a Celery worker, or the reaper's process after a
crash) reads it: in the production shape it is a volume they all mount at one path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings

KINDS = ("inbound", "outbound", "mixed")


def root() -> Path:
    return Path(settings.RECORDING_SPOOL_DIR)


def call_dir(call_id: str) -> Path:
    """The spool directory of one call (named by its public id)."""
    return root() / call_id


def wav_path(directory: Path, kind: str) -> Path:
    return directory / f"{kind}.wav"


def remove(directory: Path) -> None:
    """Delete a call's spool directory and everything in it (absent: nothing to do)."""
    shutil.rmtree(directory, ignore_errors=True)
