"""Stop Daphne's HTTP layer from parsing multipart bodies nobody reads.

Twisted's ``Request`` parses every ``multipart/form-data`` POST into ``request.args``
before Daphne hands the raw body to the application (which never looks at ``args``).
It reads the whole body into one ``bytes`` and runs it through the ``email`` package:
measured on a 32 MiB upload, Daphne's peak memory grew by 460 MiB, for any path and
before authentication. Twisted documents the switch (``parsePOSTFormSubmission``:
"This can use large amounts of memory for large uploads"); Daphne offers no way to
pass it, so requests are built with it off here.

Applied by ``config/asgi.py`` before any server process serves a request. A no-op where
Daphne is not installed.
"""

from __future__ import annotations

from typing import Any


def disable_twisted_form_parsing() -> bool:
    """Make Daphne's requests skip Twisted's form parsing; True if Daphne is patched."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:
        return False
    if getattr(WebRequest, "_switchboard_no_form_parsing", False):
        return True
    original = WebRequest.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        original(self, *args, **kwargs)

    WebRequest.__init__ = __init__
    WebRequest._switchboard_no_form_parsing = True
    return True
