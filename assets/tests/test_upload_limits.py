"""The 32 MiB limit: refused with 413 while the upload streams, never held whole, never stored.

What each test proves, honestly:

- Django's ASGI handler reads the whole body from the server before any view code runs
  (into a SpooledTemporaryFile: memory up to 2.5 MiB, then disk). The in-process ASGI
  tests measure that the request, end to end inside Django, never holds the upload in
  memory (tracemalloc peak) and that the upload handler stops reading the file part at
  the limit (its byte count), leaving no temporary file, row or stored file.
- Daphne (Twisted) receives the whole body before calling the application (a temporary
  file past 100 kB). The real-server test measures Daphne's peak resident memory across
  an oversized upload. Stopping the bytes themselves is the proxy's job
  (``client_max_body_size``); the README says so.
"""

from __future__ import annotations

import asyncio
import os
import re
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from django.core.asgi import get_asgi_application
from django.core.files.uploadedfile import SimpleUploadedFile

from assets import uploads
from assets.api import views
from assets.models import AudioAsset
from assets.tests.conftest import ASSETS, FIXTURES, stored_files
from conftest import Tenant, is_problem
from tests.processes import daphne

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("decode_in_process"),
]

LIMIT = 32 * 1024 * 1024
CHUNK = 64 * 1024
BOUNDARY = "sbtestboundary7MA4YWxkTrZu0gW"
# A real WAV header, so the file passes the sniff and only its size can refuse it.
WAV_HEAD = (FIXTURES / "speech_16k_mono_s16.wav").read_bytes()[:44]


def multipart(file_size: int) -> tuple[int, Iterator[bytes]]:
    """A multipart body with one ``audio`` file of ``file_size`` bytes, made lazily."""
    preamble = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="audio"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    epilogue = f"\r\n--{BOUNDARY}--\r\n".encode()
    total = len(preamble) + file_size + len(epilogue)

    def chunks() -> Iterator[bytes]:
        yield preamble + WAV_HEAD
        remaining = file_size - len(WAV_HEAD)
        block = bytes(CHUNK)
        while remaining > 0:
            count = min(CHUNK, remaining)
            yield block if count == CHUNK else bytes(count)
            remaining -= count
        yield epilogue

    return total, chunks()


async def asgi_post(
    app: Any, path: str, headers: dict[str, str], body: Iterator[bytes]
) -> tuple[int, bytes, int]:
    """POST through a Django ASGI app; return status, body and the bytes it pulled."""
    pulled = 0
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        for chunk in body:
            pulled += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": True}
        if not finished.is_set():
            finished.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the client waits for its answer
        raise AssertionError("unreachable")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(
        m.get("body", b"") for m in sent if m["type"] == "http.response.body"
    )
    return status, content, pulled


class RecordingHandler(uploads.AssetUploadHandler):
    instances: list[RecordingHandler] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        RecordingHandler.instances.append(self)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[RecordingHandler]:
    RecordingHandler.instances = []
    monkeypatch.setattr(views, "AssetUploadHandler", RecordingHandler)
    return RecordingHandler.instances


def _assert_nothing_stored(media_root: Path) -> None:
    assert not AudioAsset.objects.exists()
    assert stored_files(media_root) == []


def _temporary_file_gone(handler: uploads.AssetUploadHandler) -> bool:
    file = getattr(handler, "file", None)
    return file is None or not os.path.exists(file.temporary_file_path())


async def test_file_just_over_32_mib_is_refused_while_it_streams_without_being_held(
    tenant: Tenant, media_root: Path, recorded: list[RecordingHandler]
) -> None:
    # Content-Length is within the multipart allowance: only counting the file's own
    # bytes as they pass can refuse it.
    total, body = multipart(LIMIT + 1)
    assert total <= LIMIT + uploads.MULTIPART_SLACK
    app = get_asgi_application()
    headers = {
        "authorization": f"Bearer {tenant.test_key}",
        "content-type": f"multipart/form-data; boundary={BOUNDARY}",
        "content-length": str(total),
    }

    tracemalloc.start()
    try:
        status, content, pulled = await asgi_post(app, ASSETS, headers, body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert status == 413, content[:300]
    assert b'"code":"payload_too_large"' in content
    # Django's ASGI handler takes the whole body from the server first (to disk)...
    assert pulled == total
    # ...but never holds it: 33 MiB went through with a few MiB of Python memory.
    assert peak < 8 * 2**20, peak
    # The handler stopped at the limit and its temporary file is gone.
    [handler] = recorded
    assert LIMIT < handler.received <= LIMIT + CHUNK
    assert _temporary_file_gone(handler)
    await asyncio.to_thread(_assert_nothing_stored, media_root)


async def test_declared_length_over_the_limit_is_refused_before_parsing(
    tenant: Tenant, media_root: Path, recorded: list[RecordingHandler]
) -> None:
    total, body = multipart(LIMIT + uploads.MULTIPART_SLACK + 1)
    headers = {
        "authorization": f"Bearer {tenant.test_key}",
        "content-type": f"multipart/form-data; boundary={BOUNDARY}",
        "content-length": str(total),
    }

    status, content, _ = await asgi_post(get_asgi_application(), ASSETS, headers, body)

    assert status == 413, content[:300]
    assert b'"code":"payload_too_large"' in content
    assert recorded == []  # refused before an upload handler was even installed
    await asyncio.to_thread(_assert_nothing_stored, media_root)


def test_limit_counts_the_file_not_the_declared_length(
    tenant: Tenant, media_root: Path, recorded: list[RecordingHandler], settings
) -> None:
    settings.ASSET_MAX_UPLOAD_BYTES = 1024 * 1024
    audio = SimpleUploadedFile("a.wav", WAV_HEAD + bytes(1024 * 1024 + 1 - 44))

    response = tenant.client().post(ASSETS, {"audio": audio}, format="multipart")

    body = is_problem(response, 413, "payload_too_large")
    assert body["param"] == "audio"
    assert body["maxBytes"] == 1024 * 1024
    [handler] = recorded
    assert handler.received <= 1024 * 1024 + CHUNK
    assert _temporary_file_gone(handler)
    _assert_nothing_stored(media_root)


def test_file_of_exactly_the_limit_is_accepted(
    tenant: Tenant, media_root: Path, settings
) -> None:
    settings.ASSET_MAX_UPLOAD_BYTES = 256 * 1024
    wav = (FIXTURES / "speech_16k_mono_s16.wav").read_bytes()[: 256 * 1024]

    response = tenant.client().post(
        ASSETS, {"audio": SimpleUploadedFile("a.wav", wav)}, format="multipart"
    )

    assert response.status_code == 201, response.content
    assert response.json()["data"]["sizeBytes"] == 256 * 1024


def test_not_audio_is_refused_after_its_first_4_kib(
    tenant: Tenant, media_root: Path, recorded: list[RecordingHandler]
) -> None:
    text = SimpleUploadedFile("song.mp3", b"lorem ipsum " * 200_000)

    response = tenant.client().post(ASSETS, {"audio": text}, format="multipart")

    is_problem(response, 415, "unsupported_format")
    [handler] = recorded
    assert handler.received <= 4096 + CHUNK
    assert _temporary_file_gone(handler)
    _assert_nothing_stored(media_root)


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_real_daphne_refuses_33_mib_holding_it_at_most_once(
    tenant: Tenant, tmp_path: Path
) -> None:
    media = tmp_path / "test-media"
    with daphne(tmp_path, "assets", SWITCHBOARD_VAR_DIR=str(tmp_path)) as server:
        auth = {"Authorization": f"Bearer {tenant.test_key}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as client:
            # Warm up: the first upload loads the view, the parsers and the sniffer
            # (refused as not audio, so nothing is queued for a worker).
            warm_up = client.post(ASSETS, files={"audio": ("a.wav", b"hello " * 2000)})
            assert warm_up.status_code == 415, warm_up.text
            before = _peak_rss_kib(server.process.pid)
            for file_size in (LIMIT + 1, LIMIT + 1024 * 1024):
                total, body = multipart(file_size)
                response = client.post(
                    ASSETS,
                    content=body,
                    headers={
                        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                        "Content-Length": str(total),
                    },
                )
                assert response.status_code == 413, response.text
                assert response.json()["code"] == "payload_too_large"
            after = _peak_rss_kib(server.process.pid)

    # Daphne queues a received body for the application in one go, so its peak grows
    # by about one upload (measured: 36 MiB). Twisted's own form parsing, which
    # config.server switches off, cost 460 MiB for the same upload.
    assert after - before < 1.5 * total / 1024, (before, after)
    assert not AudioAsset.objects.exists()
    assert stored_files(media) == []


def test_daphne_requests_skip_twisted_form_parsing() -> None:
    from daphne.http_protocol import WebRequest
    from twisted.internet.testing import StringTransport
    from twisted.web.http import HTTPChannel

    class Server:
        def protocol_connected(self, protocol: object) -> None:
            pass

    channel = HTTPChannel()
    channel.factory = SimpleNamespace(server=Server())
    channel.makeConnection(StringTransport())

    assert WebRequest(channel)._parsePOSTFormSubmission is False
