"""The carrier driver interface (DESIGN §1 and §11).

A driver connects sessions ("lines") to a peer network: the simulator, a SIP trunk, Meta's
WhatsApp Business Calling. The rest of the platform knows only this module:

- **Settings and addresses.** ``validate_settings`` checks the settings object a session
  is created or patched with and splits it into what may be shown and the secrets (stored
  encrypted, never returned); ``describe_settings`` is what the API shows of them;
  ``normalize_address`` says what a valid ``to`` is.
- **Line operations** run in the service layer, in a transaction with the session row
  locked: ``connect``, ``disconnect``, ``forget`` (logout), and, for carriers that pair
  like a linked device, ``qr`` and ``pairing_code``. They set the session's fields (the
  core saves the row and announces the connection state) and may emit events of their
  own through ``calls.services.session_event``.
- **Network presence.** A carrier with ``holds_lines`` keeps something alive on the network
  for each connected line (a SIP registration, say). One process holds each line at a
  time, under a lease in the database (``calls/lines.py``): the holder's engine calls
  ``line_up`` once it has the lease and ``line_down`` when the line is disconnected or the
  process stops; the driver reports the outcome with ``calls.lines.line_connected`` or
  ``line_failed`` (errors are facts on the session, not exceptions).
- **Calls.** ``dial`` places an outgoing call and returns its ``CarrierLeg``; a call the
  network offers is handed to ``calls.runtime.inbound.offer_incoming(session_id, from,
  leg)``.
  A leg reports the peer's signalling to the ``LegListener`` bound to it and exchanges
  media with ``exchange``: once per 20 ms tick of the media clock, the runtime hands it
  320 float32 samples (16 kHz mono) for the peer and takes the 320 the peer sent.
  ``exchange`` must not block or wait on the network: it runs on the event loop for every
  live call every 20 ms, so a driver with network media hands frames over through buffers
  filled by its own thread or loop.
- **Lifecycle.** ``start(engine)`` and ``stop()`` run with the engine of every process that
  hosts calls (``housekeeping`` once a second there, off the event loop).

Every coroutine runs on the process's home event loop. Timeouts the platform owns
(ringing too long, maximum duration) are not the driver's business.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from audio import Frame
from config.errors import Conflict

if TYPE_CHECKING:
    from calls.models import Session
    from calls.runtime.engine import Engine

__all__ = [
    "Carrier",
    "CarrierError",
    "CarrierLeg",
    "Frame",
    "LegInfo",
    "LegListener",
    "LineInfo",
]


class CarrierError(Exception):
    """A refusal or failure the network reported: becomes ``endDetail`` or ``lastError``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class LegListener(Protocol):
    """What a leg tells the runtime about the peer's side of the call."""

    def leg_ringing(self) -> None: ...

    def leg_answered(self) -> None: ...

    def leg_ended(self, reason: str, detail: CarrierError | None = None) -> None:
        """The peer side ended the call: remote_hangup, busy, declined, failed, missed.

        ``detail`` is what the network said (a SIP status, a Graph API error), shown as
        the call's ``endDetail``.
        """

    def leg_dtmf(self, digit: str, duration_ms: int) -> None:
        """The peer pressed a key (RFC 4733 and the like): ``0-9``, ``*``, ``#``, ``A-D``."""


@dataclass(frozen=True)
class LineInfo:
    """What a driver is told about a session's line (credentials decrypted)."""

    session_id: str
    environment_id: str
    address: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # secrets never reach a log line
        return f"LineInfo(session_id={self.session_id!r}, address={self.address!r})"


@dataclass(frozen=True)
class LegInfo:
    call_id: str
    session_id: str
    local_address: str
    peer_address: str
    line: LineInfo | None = None


class CarrierLeg(abc.ABC):
    """One call's connection to the peer."""

    listener: LegListener | None = None
    # The leg can send DTMF (``send_dtmf``); without it the API answers 409.
    supports_dtmf: ClassVar[bool] = False

    def bind(self, listener: LegListener) -> None:
        """Give the leg the runtime it reports to (before any signalling is reported)."""
        self.listener = listener

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

    async def send_dtmf(self, digits: str) -> None:
        """Send DTMF digits to the peer; legs without ``supports_dtmf`` refuse (409)."""
        raise Conflict(
            "This carrier cannot send DTMF.", code="not_supported_by_carrier"
        )


def not_supported(carrier: str, what: str) -> Conflict:
    return Conflict(
        f"The {carrier} carrier has no {what}.", code="not_supported_by_carrier"
    )


class Carrier(abc.ABC):
    """A peer network. One instance per process, shared by every session of its name."""

    name: ClassVar[str]
    # Lines link like a device (QR or pairing code) before they can call.
    pairs: ClassVar[bool] = False
    # Lines keep a presence on the network that one process must hold (see above).
    holds_lines: ClassVar[bool] = False

    # ------------------------------------------------------------ settings
    def validate_settings(
        self,
        raw: Mapping[str, Any] | None,
        *,
        current: Mapping[str, Any] | None = None,
        current_secrets: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check a settings object; return ``(shown, secrets)``.

        ``current`` and ``current_secrets`` are set on a PATCH: omitted fields keep their
        values. Raise ``config.errors.InvalidRequest`` with ``param`` naming the field.
        A carrier without settings accepts none.
        """
        if raw:
            from config.errors import InvalidRequest

            raise InvalidRequest(
                f"The {self.name} carrier takes no settings.", param=self.name
            )
        return {}, {}

    def describe_settings(
        self, shown: Mapping[str, Any], secrets: Mapping[str, Any], session_id: str = ""
    ) -> dict[str, Any] | None:
        """The settings object the API returns, in its camelCase names (secrets only as
        ``hasX`` or a last 4); ``None`` for a carrier without settings.

        ``shown`` holds what ``validate_settings`` returned, as the API parsed it
        (snake_case names); ``session_id`` is the session's public id (for URLs that
        name it).
        """
        return None

    @abc.abstractmethod
    def normalize_address(self, to: str) -> str:
        """Return the canonical form of a callee; raise InvalidRequest(param="to")."""

    # ------------------------------------------------------------ line operations
    def connect(self, session: Session) -> list[tuple[str, dict[str, Any]]]:
        """Bring the line up (row locked, in a transaction); set its state fields.

        Return the events to emit after the connection state change (e.g. a first QR).
        """
        from calls.models import ConnectionState

        session.active = True
        session.last_error = None
        session.paired = True
        if self.holds_lines:
            # The holding process brings it up and reports back (calls/lines.py); a new
            # generation makes it try again even where the line failed before.
            generation = int((session.line_state or {}).get("generation", 0)) + 1
            session.line_state = {
                **(session.line_state or {}),
                "generation": generation,
            }
            session.connection_state = ConnectionState.CONNECTING
        else:
            session.connection_state = ConnectionState.CONNECTED
        return []

    def disconnect(self, session: Session) -> None:
        """The line goes offline (its calls have ended); credentials stay."""
        return None  # optional: a carrier without it does nothing

    def forget(self, session: Session) -> None:
        """Logout: the line is unlinked; what pairing produced is forgotten."""
        return None  # optional: a carrier without it does nothing

    def qr(self, session: Session) -> dict[str, Any]:
        """The current pairing QR: ``{qr, ttlMs, createdAt}``."""
        raise not_supported(self.name, "pairing QR")

    def pairing_code(self, session: Session, phone_number: str) -> str:
        """Issue a pairing code for linking by phone number."""
        raise not_supported(self.name, "pairing codes")

    def housekeeping(self) -> None:
        """Periodic upkeep (once a second, in a worker thread, may use the database)."""
        return None  # optional: a carrier without it does nothing

    # ------------------------------------------------------------ network presence
    async def line_up(self, line: LineInfo) -> None:
        """This process now holds the line: bring its network presence up."""
        return None  # optional: a carrier without it does nothing

    async def line_down(self, session_id: str) -> None:
        """Release the line's network presence (un-register); must not raise."""
        return None  # optional: a carrier without it does nothing

    # ------------------------------------------------------------ lifecycle and calls
    async def start(self, engine: Engine) -> None:
        """The process's engine started: open listeners, threads, sockets."""
        return None  # optional: a carrier without it does nothing

    async def stop(self) -> None:
        """The engine stops: close everything ``start`` opened."""
        return None  # optional: a carrier without it does nothing

    @abc.abstractmethod
    async def dial(self, info: LegInfo, listener: LegListener) -> CarrierLeg:
        """Place an outgoing call; progress arrives through ``listener``.

        Raise ``CarrierError`` to refuse at once (the call ends ``failed`` with it as its
        ``endDetail``).
        """
