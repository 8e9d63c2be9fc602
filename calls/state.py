"""The call state machine, in one place: which state may follow which."""

from __future__ import annotations

from calls.models import CallState

INITIATING, RINGING, ACTIVE, ENDED = (
    CallState.INITIATING,
    CallState.RINGING,
    CallState.ACTIVE,
    CallState.ENDED,
)

# A call never leaves `ended`; `active` is reached only from `ringing`.
ALLOWED: dict[str, frozenset[str]] = {
    INITIATING: frozenset({RINGING, ENDED}),
    RINGING: frozenset({ACTIVE, ENDED}),
    ACTIVE: frozenset({ENDED}),
    ENDED: frozenset(),
}


def sources_of(target: str) -> frozenset[str]:
    """Return the states from which ``target`` may be entered."""
    return frozenset(state for state, nexts in ALLOWED.items() if target in nexts)


def can_move(current: str, target: str) -> bool:
    return target in ALLOWED[current]
