"""Switchboard's Python SDK: the REST API (sync and async), a call's live media socket,
Server-Sent Events with resume, and webhook verification.

::

    from switchboard_sdk import Switchboard

    with Switchboard("http://127.0.0.1:8000", "sb_test_…") as sb:
        session = sb.sessions.create("My line")

The Pipecat integration lives in ``switchboard_sdk.pipecat`` (``pip install
'switchboard-sdk[pipecat]'``); importing this package never imports Pipecat.
"""

from switchboard_sdk import types
from switchboard_sdk._async import AsyncSwitchboard
from switchboard_sdk._errors import (
    MediaSocketClosed,
    SwitchboardError,
    WebhookVerificationError,
)
from switchboard_sdk._http import VERSION as __version__
from switchboard_sdk._sync import Switchboard
from switchboard_sdk.media import (
    AudioFrame,
    Backpressure,
    BufferStatus,
    CallStateChanged,
    Dtmf,
    Ended,
    Mark,
    MediaError,
    MediaEvent,
    MediaSocket,
    Ready,
    UnknownMessage,
)
from switchboard_sdk.sse import AsyncEventStream, EventStream
from switchboard_sdk.webhooks import WebhookVerifier, verify_webhook

__all__ = [
    "AsyncEventStream",
    "AsyncSwitchboard",
    "AudioFrame",
    "Backpressure",
    "BufferStatus",
    "CallStateChanged",
    "Dtmf",
    "Ended",
    "EventStream",
    "Mark",
    "MediaError",
    "MediaEvent",
    "MediaSocket",
    "MediaSocketClosed",
    "Ready",
    "Switchboard",
    "SwitchboardError",
    "UnknownMessage",
    "WebhookVerificationError",
    "WebhookVerifier",
    "__version__",
    "types",
    "verify_webhook",
]
