"""The inbound path every carrier driver uses: a call its network delivers rings here."""

from __future__ import annotations

from typing import Any

from calls.carriers.base import CarrierLeg
from calls.runtime.engine import ensure_engine


async def offer_incoming(session_id: str, from_address: str, leg: CarrierLeg) -> Any:
    """Offer a call the network delivers to a session: it rings in this process.

    Call it on the home loop with the leg built for the call; the call appears
    ``ringing`` with ``call.incoming``, and the leg is bound to its runtime. Returns the
    call's snapshot; raises ``config.errors.ApplicationError`` when the session cannot
    take calls (deleted, not connected): refuse the call on the network then.
    """
    engine = await ensure_engine()
    return await engine.offer_incoming(session_id, from_address, leg)
