"""Schemathesis hooks for the run in test_schemathesis.py (loaded by its config file)."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis

HEADER = "Idempotency-Key"


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: Any, kwargs: Any) -> None:
    """Give every valid generated Idempotency-Key a value of its own.

    In stateful runs only: there a repeated key with the same body replays the first
    response, as documented, even when the resource it created has been deleted since,
    and the run would read the replay as "created, yet 404". Replays are tested in
    config/tests; invalid keys (empty, too long) stay as generated, so their 400 is
    still fuzzed.
    """
    meta = case.meta
    if meta is None or meta.phase.name != "stateful" or not case.headers:
        # Elsewhere cases stand alone, and editing one can relabel it (a probe that
        # leaves out Authorization would be sent with it).
        return
    key = case.headers.get(HEADER)
    if isinstance(key, str) and 1 <= len(key) <= 255:
        case.headers[HEADER] = uuid.uuid4().hex
