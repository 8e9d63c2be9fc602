"""Extension points other apps plug into the call runtime (recordings, streams, playback).

Register from an AppConfig's ``ready()``. Runtime hooks run on the home loop, in the
process hosting the call; they must be quick (schedule slow work with
``runtime.engine.spawn``) and must not touch the database directly.

- ``on_active(runtime)``: media starts flowing (the call was answered).
- ``on_end(runtime)``: the call ended; the runtime is about to be forgotten.
- ``on_reaped(call_pk)``: the reaper ended a call whose process died (runs in the reaper's
  thread, synchronously, after the call's row was ended; may use the database).

One more seam: the dial-out streams a call is placed or accepted with
(``register_streams``); without it a call takes no streams.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from calls.models import Call
    from calls.runtime.runtime import CallRuntime

logger = logging.getLogger(__name__)

RuntimeHook = Callable[["CallRuntime"], None]

_on_active: list[RuntimeHook] = []
_on_end: list[RuntimeHook] = []
_on_reaped: list[Callable[[int], None]] = []


def register(
    *,
    on_active: RuntimeHook | None = None,
    on_end: RuntimeHook | None = None,
    on_reaped: Callable[[int], None] | None = None,
) -> None:
    """Register hooks (each at most once)."""
    for hook, registry in (
        (on_active, _on_active),
        (on_end, _on_end),
        (on_reaped, _on_reaped),
    ):
        if hook is not None and hook not in registry:
            registry.append(hook)  # type: ignore[arg-type]


def _run(registry: list[RuntimeHook], runtime: CallRuntime) -> None:
    for hook in registry:
        try:
            hook(runtime)
        except Exception:
            logger.exception(
                "Runtime hook %s failed for call %s", hook, runtime.call_id
            )


def call_active(runtime: CallRuntime) -> None:
    _run(_on_active, runtime)


def call_ended(runtime: CallRuntime) -> None:
    _run(_on_end, runtime)


def call_reaped(call_pk: int) -> None:
    for hook in _on_reaped:
        try:
            hook(call_pk)
        except Exception:
            logger.exception("Reaper hook %s failed for call %s", hook, call_pk)


class StreamsExtension(Protocol):
    """Dial-out streams given with a call (DESIGN §6), as the streams app offers them."""

    def precheck(self, call: Call | None, options: list[dict[str, Any]]) -> None:
        """Refuse options that cannot start (before the call exists, for a new call)."""

    def add(
        self, call: Call, options: list[dict[str, Any]], *, allow_ended: bool = False
    ) -> list[Any]:
        """Create the streams; they start when media flows."""


class _NoStreams:
    def precheck(self, call: Call | None, options: list[dict[str, Any]]) -> None:
        if options:
            from config.errors import InvalidRequest

            raise InvalidRequest("This deployment has no dial-out streams.")

    def add(
        self, call: Call, options: list[dict[str, Any]], *, allow_ended: bool = False
    ) -> list[Any]:
        return []


_streams: StreamsExtension = _NoStreams()


def register_streams(extension: StreamsExtension) -> None:
    global _streams
    _streams = extension


def streams_extension() -> StreamsExtension:
    return _streams
