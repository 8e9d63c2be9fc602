"""Fixtures for asset tests: the audio fixtures, uploads, storage and in-process decoding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from calls.tests.conftest import engine, fast_network
from config.celery_app import app as celery_app

# The call engine's fixtures, for tests that play audio into calls.
__all__ = ["engine", "fast_network"]

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "audio"
ASSETS = "/api/v1/call-audio-assets"


@pytest.fixture
def decode_in_process() -> Iterator[None]:
    """Run decoding tasks in the calling process, as the embedded default does.

    For tests about the API rather than Celery; with REDIS_URL set the suite otherwise
    sends tasks to a broker no worker of this run listens on.
    """
    conf = celery_app.conf
    before = conf.task_always_eager
    conf.task_always_eager = True
    yield
    conf.task_always_eager = before


@pytest.fixture
def media_root() -> Path:
    return Path(settings.MEDIA_ROOT)


def stored_files(root: Path) -> list[str]:
    """Every file under the storage root, as storage names."""
    if not root.exists():
        return []
    return sorted(
        str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()
    )


def upload(
    client: APIClient, path: Path, *, name: str | None = None, **extra: Any
) -> Any:
    """POST a file as multipart field ``audio``; return the response."""
    data = SimpleUploadedFile(
        name or path.name,
        path.read_bytes(),
        content_type=extra.pop("content_type", "application/octet-stream"),
    )
    return client.post(ASSETS, {"audio": data}, format="multipart", **extra)
