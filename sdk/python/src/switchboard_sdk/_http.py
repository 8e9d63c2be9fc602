"""What the sync and async clients share: URLs, headers, envelopes and errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from switchboard_sdk._errors import SwitchboardError
from switchboard_sdk._ops import API, Op, media_path

VERSION = "0.1.0"
USER_AGENT = f"switchboard-sdk-python/{VERSION}"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# Asset uploads (up to 32 MiB) and recording downloads may take longer than a call.
TRANSFER_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


def server_root(base_url: str) -> str:
    """``http://host:8000``, given that or ``http://host:8000/api/v1``."""
    root = base_url.rstrip("/")
    if root.endswith(API):
        root = root[: -len(API)]
    parts = urlsplit(root)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
    return root


def websocket_url(root: str, path: str) -> str:
    """The ws(s):// URL of ``path`` on the server at ``root``."""
    parts = urlsplit(root)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + path, "", ""))


def media_socket_url(
    root: str, call: str | Mapping[str, Any], call_id: str | None = None
) -> str:
    """Where to open a call's media socket: given the call's snapshot, its ``mediaUrl``
    (at the server process hosting the call) when it has one; else the call's path on
    the server at ``root``."""
    if isinstance(call, Mapping):
        if call.get("mediaUrl"):
            return str(call["mediaUrl"])
        session_id, call_id = str(call["sessionId"]), str(call["callId"])
    else:
        session_id = call
    if call_id is None:
        raise TypeError("media() takes a call snapshot, or a session id and a call id")
    return websocket_url(root, media_path(session_id, call_id))


def auth_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}


def request_headers(op: Op[Any]) -> dict[str, str]:
    return {"Idempotency-Key": op.idempotency_key} if op.idempotency_key else {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def error_of(response: httpx.Response) -> SwitchboardError:
    """The ``SwitchboardError`` of a failed response (read in full before)."""
    request_id = response.headers.get("X-Request-Id")
    retry_after = _retry_after(response)
    try:
        problem = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        problem = None
    if isinstance(problem, dict) and "code" in problem:
        return SwitchboardError.from_problem(
            response.status_code,
            problem,
            request_id=request_id,
            retry_after=retry_after,
        )
    # Not Switchboard's own answer (a proxy's error page, say).
    return SwitchboardError(
        response.status_code,
        "http_error",
        response.reason_phrase,
        response.text[:500],
        request_id=request_id,
        retry_after=retry_after,
    )


def check(response: httpx.Response) -> None:
    """Raise ``SwitchboardError`` unless the response succeeded."""
    if response.is_error:
        raise error_of(response)


def data_of(response: httpx.Response) -> Any:
    """The ``data`` of a successful response's envelope."""
    check(response)
    body = response.json()
    if isinstance(body, Mapping) and "data" in body:
        return body["data"]
    return body


def page_of(response: httpx.Response) -> tuple[list[Any], str | None]:
    """The items of a list response and its next cursor."""
    check(response)
    body = response.json()
    return list(body.get("data") or []), body.get("nextCursor")


def upload_file(
    file: Any, filename: str | None, content_type: str | None
) -> dict[str, Any]:
    """httpx ``files=`` for an upload given as a path, bytes or a binary file."""
    import os
    from pathlib import Path

    if isinstance(file, str | os.PathLike):
        path = Path(file)
        content: Any = path.read_bytes()
        filename = filename or path.name
    elif isinstance(file, bytes | bytearray | memoryview):
        content = bytes(file)
    else:
        content = file
        filename = filename or Path(getattr(file, "name", "") or "audio").name
    return {
        "audio": (
            filename or "audio",
            content,
            content_type or "application/octet-stream",
        )
    }
