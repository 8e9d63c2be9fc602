"""The live media socket in the OpenAPI schema (DESIGN §5).

The socket is a Channels consumer (``calls.transports.websocket``), not a DRF view, so
the schema generator does not see it; this hook documents its upgrade as an operation.
"""

from __future__ import annotations

from typing import Any

PATH = "/api/v1/sessions/{sessionId}/calls/{callId}/media"

DESCRIPTION = """\
A `GET` with `Connection: Upgrade`, `Upgrade: websocket` and the usual bearer key opens \
the call's live audio. One live socket per call: a new one replaces the old (`error` \
`replaced`, close 4409); the call goes on when the socket drops.

**Binary frames** both ways: mono Float32LE PCM at 16 000 Hz. The client sends any \
multiple of 4 bytes, up to 1 s per frame; the server sends the peer's audio, 20 ms per \
frame.

**Text frames** from the server (JSON, by `type`):
- `ready` `{media: {direction, encoding, sampleRate, channels, frameMs}, call}`: the first.
- `buffer` `{bufferedMs, pauseMs, resumeMs, capacityMs}`: the outbound playout depth, \
at watermarks and every 200 ms while non-empty. Pause at `pauseMs`, resume at `resumeMs`.
- `call_state` `{call}` on every state or mute change; `ended` `{call}`, then close 1000.
- `mark` `{name, playedMs}` once everything sent before the client's mark has been \
played to the peer; `{name, cleared: true}` when a `clear` dropped it first.
- `dtmf` `{digits}` when the peer presses keys.
- `error` `{code, message}`: `invalid_pcm_frame`, `frame_too_large`, `buffer_overflow`, \
`invalid_message`, `replaced`. A bad frame is dropped; the socket stays open.

**Text frames** from the client: `{"type": "clear"}` (drop buffered outbound audio: \
barge-in) and `{"type": "mark", "name": "…"}`.

Refusals come before the upgrade is accepted, so they are plain HTTP: a missing or \
revoked key, another tenant's call or an unknown one is answered 403. A call that has \
ended is accepted, sent `ended`, and closed.\
"""


def document_media_socket(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Add the media socket's upgrade to the schema (after the shared responses)."""
    result["paths"].setdefault(PATH, {})["get"] = {
        "operationId": "openMediaSocket",
        "tags": ["Media"],
        "summary": "Open the call's live media socket (WebSocket)",
        "description": DESCRIPTION,
        "parameters": [
            _path("sessionId", "The session's id."),
            _path("callId", "The call's id."),
            _header("Connection", "Upgrade"),
            _header("Upgrade", "websocket"),
        ],
        "responses": {
            "101": {"description": "Switching Protocols: the socket is open."},
            "403": {
                "description": "The upgrade is refused: no valid key, or no such call "
                "in this key's environment.",
            },
        },
        "security": [{"ApiKey": []}],
    }
    return result


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "in": "path",
        "name": name,
        "required": True,
        "description": description,
        "schema": {"type": "string", "format": "uuid"},
    }


def _header(name: str, value: str) -> dict[str, Any]:
    return {
        "in": "header",
        "name": name,
        "required": True,
        "schema": {"type": "string", "enum": [value]},
    }
