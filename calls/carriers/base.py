"""The carrier driver interface.

A driver connects the platform to a peer network (the simulator, later a SIP trunk). The
rest of the platform knows only this interface:

- ``Carrier.dial(...)`` places an outgoing call and returns its ``CarrierLeg``.
- ``Carrier.incoming(...)`` returns the leg of a call the network offers (for the simulator,
  test helpers ask for one; a SIP driver would call the engine's incoming handler).
- A ``CarrierLeg`` reports signalling through the ``LegListener`` it was given (ringing,
  answered, ended with a reason) and exchanges media with ``exchange``: once per 20 ms tick
  of the media clock, the runtime hands it 320 float32 samples (16 kHz mono) for the peer
  and takes 320 samples the peer sent. ``exchange`` must not block or allocate per call
  beyond what it must; it runs on the event loop for every live call every 20 ms.
- ``answer``/``reject``/``hangup`` are the platform's own signalling towards the peer.

Every method runs on the process's home event loop. Timeouts the platform owns (ringing
too long, maximum duration) are not the driver's business.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.float32]


class LegListener(Protocol):
    """What a leg tells the runtime about the peer's side of the call."""

    def leg_ringing(self) -> None: ...

    def leg_answered(self) -> None: ...

    def leg_ended(self, reason: str) -> None:
        """The peer side ended the call: remote_hangup, busy, declined, failed, missed."""


@dataclass(frozen=True)
class LegInfo:
    call_id: str
    session_id: str
    local_jid: str
    peer_jid: str
    behavior: str = ""


class CarrierLeg(abc.ABC):
    """One call's connection to the peer."""

    @abc.abstractmethod
    def exchange(self, outbound: Frame) -> Frame:
        """Send 20 ms to the peer and return the peer's 20 ms (valid until the next call)."""

    @abc.abstractmethod
    async def answer(self) -> None:
        """Answer an incoming call."""

    @abc.abstractmethod
    async def reject(self) -> None:
        """Refuse an incoming call."""

    @abc.abstractmethod
    async def hangup(self) -> None:
        """End the call from our side; must be safe to call on a leg that already ended."""


class Carrier(abc.ABC):
    name: str

    @abc.abstractmethod
    async def dial(self, info: LegInfo, listener: LegListener) -> CarrierLeg:
        """Place an outgoing call; progress arrives through ``listener``."""

    @abc.abstractmethod
    async def incoming(self, info: LegInfo, listener: LegListener) -> CarrierLeg:
        """Return the leg of a call the network offers (it is already ringing)."""
