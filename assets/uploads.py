"""The upload handler of ``POST /call-audio-assets``: bounded, on disk, sniffed early.

What reaches it, and what is already spent by then (measured, see assets/tests):

- Daphne (Twisted) receives a whole request body before it calls the application; past
  100 kB it keeps it in a temporary *file*, not in memory.
- Django's ASGI handler then copies the body into a SpooledTemporaryFile: in memory up
  to FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB), on disk past that.
- This handler refuses a declared Content-Length past the limit before the multipart
  parser reads a byte of it, counts the file part's bytes as they stream through the
  parser (64 KiB at a time, written straight to a temporary file) and raises 413 the
  moment the count passes the limit, or 415 once the first 4 KiB are not audio.

So the server never holds an upload whole in memory, and refuses it without parsing or
storing it; bandwidth and temporary disk are bounded by the proxy in front of Daphne
(nginx ``client_max_body_size 33m``), which is the only place that can stop the bytes
themselves.
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from assets.decoding import ACCEPTED_FORMATS, SNIFF_BYTES, sniff
from config.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

FIELD = "audio"
# Room for the multipart framing around the file: boundaries, part headers, a long
# file name. The file's own bytes are held to the exact limit while they stream.
MULTIPART_SLACK = 64 * 1024


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The audio file is larger than the {limit // 2**20} MiB limit.",
        param=FIELD,
        extra={"maxBytes": limit},
    )


def not_audio(detail: str | None = None) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        detail
        or (
            "The file is not an audio format we accept (we read the bytes, not the "
            "file name or Content-Type). Accepted formats: "
            + ", ".join(ACCEPTED_FORMATS)
            + "."
        ),
        code="unsupported_format",
        param=FIELD,
        extra={"acceptedFormats": list(ACCEPTED_FORMATS)},
    )


def check_declared_length(content_length: int, limit: int) -> None:
    """Refuse a body whose declared length cannot fit the limit, before reading it."""
    if content_length > limit + MULTIPART_SLACK:
        raise too_large(limit)


class AssetUploadHandler(TemporaryFileUploadHandler):
    """Stream the ``audio`` file part to a temporary file, refusing it as soon as it fails.

    A refused file's temporary file is deleted before the refusal escapes the parser;
    nothing of a refused upload remains.
    """

    def __init__(self, request: Any = None, *, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.received = 0
        self.head = bytearray()
        self.sniffed = False
        self.files = 0

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        check_declared_length(content_length, self.max_bytes)

    def new_file(self, field_name: str, *args: Any, **kwargs: Any) -> None:
        self.files += 1
        if field_name != FIELD or self.files > 1:
            raise InvalidRequest(
                f"Send exactly one file, in the multipart field `{FIELD}`.",
                param=FIELD,
            )
        super().new_file(field_name, *args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self._discard()
            raise too_large(self.max_bytes)
        if not self.sniffed:
            self.head += raw_data[: SNIFF_BYTES - len(self.head)]
            if len(self.head) >= SNIFF_BYTES:
                self._sniff()
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> UploadedFile | None:
        if not self.sniffed:
            self._sniff()
        return super().file_complete(file_size)

    def _sniff(self) -> None:
        self.sniffed = True
        if self.head and sniff(bytes(self.head)) is None:
            self._discard()
            raise not_audio()

    def _discard(self) -> None:
        # The parser closes the files it finished, not the one a handler refuses.
        self.file.close()  # a NamedTemporaryFile: closing deletes it
