"""Twilio-style identifiers for the ``twilio`` dialect and its REST endpoint. No Django here.

A Twilio SID is two letters and 32 hex digits. Switchboard derives them from its own
UUIDv7 ids, so they are stable and reversible: ``AC`` + the environment's id (the
``accountSid`` a bot uses to hang up), ``CA`` + the call's id, ``MZ`` + the stream's id.
"""

from __future__ import annotations

import re
import uuid

_SID = re.compile(r"^(AC|CA|MZ)([0-9a-f]{32})$")


def sid(prefix: str, public_id: uuid.UUID | str) -> str:
    return prefix + uuid.UUID(str(public_id)).hex


def account_sid(environment_id: uuid.UUID | str) -> str:
    return sid("AC", environment_id)


def call_sid(call_id: uuid.UUID | str) -> str:
    return sid("CA", call_id)


def stream_sid(stream_id: uuid.UUID | str) -> str:
    return sid("MZ", stream_id)


def parse_sid(prefix: str, value: str) -> uuid.UUID | None:
    """The UUID behind a SID with this prefix, or None if it is not one."""
    match = _SID.match(value)
    if match is None or match.group(1) != prefix:
        return None
    return uuid.UUID(hex=match.group(2))
