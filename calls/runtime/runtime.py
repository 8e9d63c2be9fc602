"""``CallRuntime``: the live side of one call (signalling, timers, media per tick)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from django.conf import settings

from audio import FRAME_SAMPLES, Frame
from calls.carriers.base import CarrierError, CarrierLeg
from calls.models import CallState, Direction, EndReason
from calls.runtime import hooks, store
from config.errors import Conflict

if TYPE_CHECKING:
    from calls.runtime.engine import Engine

logger = logging.getLogger(__name__)


NOT_ANSWERED = frozenset({CallState.INITIATING, CallState.RINGING})

# Client transports, in the order the snapshot's ``transport`` names them when several
# are attached: the live media socket, then dial-out streams. Other kinds of client
# (playback, recorders) attach too but are not a transport.
TRANSPORTS = ("websocket", "stream")
# Clients that consume a call: while none is attached (and no playback is queued) after
# its live socket dropped, the call may end `client_gone`.
CONSUMERS = ("websocket", "stream", "playback")


class OutboundSource(Protocol):
    """Audio for the peer: live socket audio, dial-out streams, playback."""

    def read_into(self, out: Frame) -> int:
        """Fill ``out`` with the next 20 ms (zeros where silent); return real samples."""


class MediaSubscriber(Protocol):
    def on_media(self, inbound: Frame, outbound: Frame) -> None:
        """Receive one tick's frames; copy them to keep them past this call."""


class CallObserver(Protocol):
    def on_call_update(self, snapshot: dict[str, Any]) -> None: ...

    def on_call_ended(self, snapshot: dict[str, Any]) -> None: ...


class CallRuntime:
    """One live call. Created with the call, forgotten when it ends."""

    def __init__(
        self,
        engine: Engine,
        *,
        call_pk: int,
        call_id: str,
        environment_id: str,
        session_id: str,
        direction: str,
        state: str,
        snapshot: dict[str, Any],
        carrier: str = "",
        client_gone_after_s: float = 0.0,
    ) -> None:
        self.engine = engine
        # Ended `client_gone` this long after its live socket dropped with nobody else
        # consuming it (0: never).
        self.client_gone_after_s = client_gone_after_s
        self._had_socket = False
        self._gone_timer: asyncio.TimerHandle | None = None
        self.call_pk = call_pk
        self.call_id = call_id
        self.environment_id = environment_id
        self.session_id = session_id
        self.direction = direction
        self.carrier = carrier
        self.state = state
        self.snapshot = snapshot
        self.muted = bool(snapshot.get("audioMuted"))
        self.leg: CarrierLeg | None = None
        self.sources: list[OutboundSource] = []
        self.subscribers: list[MediaSubscriber] = []
        self.observers: list[CallObserver] = []
        self.clients: dict[str, list[Any]] = {}
        self._transport = ""
        self._transport_writing = False
        self.media_frames = 0
        self._out = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        self._mix = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        self._timers: list[asyncio.TimerHandle] = []
        self._lock = asyncio.Lock()
        self.ended = asyncio.Event()

    # ------------------------------------------------------------ media, per tick
    def tick(self) -> None:
        out = self._out
        sources = self.sources
        if not sources:
            out.fill(0.0)
        else:
            sources[0].read_into(out)
            if len(sources) > 1:
                mix = self._mix
                for source in sources[1:]:
                    source.read_into(mix)
                    out += mix
                np.clip(out, -1.0, 1.0, out=out)
        if self.muted:
            # Sources were still read: muted audio is consumed at real time, not queued.
            out.fill(0.0)
        leg = self.leg
        if leg is None:
            return
        inbound = leg.exchange(out)
        for subscriber in self.subscribers:
            subscriber.on_media(inbound, out)
        self.media_frames += 1

    # ------------------------------------------------------------ clients
    def attach_client(
        self,
        kind: str,
        client: Any,
        *,
        source: bool = False,
        subscriber: bool = False,
        observer: bool = False,
        replace: bool = False,
    ) -> list[Any]:
        """Attach a client of a kind (``websocket``, ``stream``, ``playback``…) in its
        roles: an outbound source, a media subscriber, a call observer.

        ``replace`` detaches the kind's current clients first (one live socket per call)
        and returns them. A replacing client's audio is read first.
        """
        replaced = list(self.clients.get(kind, ())) if replace else []
        for old in replaced:
            self.detach_client(old)
        self.clients.setdefault(kind, []).append(client)
        if kind == "websocket":
            self._had_socket = True
        if kind in CONSUMERS and self._gone_timer is not None:
            self._gone_timer.cancel()
            self._gone_timer = None
        if source:
            if replace:
                self.sources.insert(0, client)
            else:
                self.sources.append(client)
        if subscriber:
            self.subscribers.append(client)
        if observer:
            self.observers.append(client)
        self._transport_changed()
        return replaced

    def detach_client(self, client: Any) -> None:
        """Detach a client from every role; the call goes on without it."""
        for members in self.clients.values():
            if client in members:
                members.remove(client)
        for roles in (self.sources, self.subscribers, self.observers):
            if client in roles:
                roles.remove(client)
        self._transport_changed()
        self._watch_for_client_gone()

    # ------------------------------------------------------------ nobody listening
    def _consumed(self) -> bool:
        """A socket or a dial-out stream is attached, or playback is queued."""
        if any(self.clients.get(kind) for kind in ("websocket", "stream")):
            return True
        return any(len(queue) for queue in self.clients.get("playback", ()))

    def _watch_for_client_gone(self) -> None:
        if (
            not self._had_socket
            or self.client_gone_after_s <= 0
            or self.state == CallState.ENDED
            or self._gone_timer is not None
            or self._consumed()
        ):
            return
        loop = asyncio.get_running_loop()
        self._gone_timer = loop.call_later(
            self.client_gone_after_s, self._client_gone_check
        )

    def _client_gone_check(self) -> None:
        self._gone_timer = None
        if self.state == CallState.ENDED:
            return
        if any(self.clients.get(kind) for kind in ("websocket", "stream")):
            return  # someone came back; the next drop watches again
        if self._consumed():  # playback still queued: look again later
            self._watch_for_client_gone()
            return
        logger.info(
            "Call %s: no client for %ss; ending it",
            self.call_id,
            self.client_gone_after_s,
        )
        self.engine.spawn(self.end(EndReason.CLIENT_GONE))

    def clients_of(self, kind: str) -> list[Any]:
        return self.clients.get(kind, [])

    @property
    def transport(self) -> str:
        """The client transport attached now (blank when none is)."""
        for kind in TRANSPORTS:
            if self.clients.get(kind):
                return kind
        return ""

    def _transport_changed(self) -> None:
        transport = self.transport
        if transport == self._transport or self.state == CallState.ENDED:
            return
        self._transport = transport
        self.snapshot = {**self.snapshot, "transport": transport or None}
        if not self._transport_writing:
            self._transport_writing = True
            self.engine.spawn(self._write_transport())

    async def _write_transport(self) -> None:
        """Record the attached transport, latest value last (one write at a time)."""
        try:
            written = None
            while written != self._transport:
                written = self._transport
                await store.set_transport(self.call_pk, written)
        finally:
            self._transport_writing = False

    @property
    def media_ms(self) -> int:
        return self.media_frames * 20

    # ------------------------------------------------------------ lifecycle
    def attach(self, leg: CarrierLeg) -> None:
        self.leg = leg
        ring_timeout = settings.CALL_RING_TIMEOUT_S
        reason = (
            EndReason.NO_ANSWER
            if self.direction == Direction.OUTGOING
            else EndReason.MISSED
        )
        if self.state in (CallState.INITIATING, CallState.RINGING):
            self._later(ring_timeout, self._ring_timed_out, reason)

    def _later(
        self,
        seconds: float,
        coro_fn: Callable[..., Coroutine[Any, Any, Any]],
        *args: Any,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(seconds, self._spawn, coro_fn, *args))

    def _spawn(
        self, coro_fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any
    ) -> None:
        self.engine.spawn(coro_fn(*args))

    async def _ring_timed_out(self, reason: str) -> None:
        moved = await self._move(CallState.ENDED, reason, only_from=NOT_ANSWERED)
        if moved and self.leg is not None:
            await self.leg.hangup()

    # LegListener: what the peer side did.
    def leg_ringing(self) -> None:
        self.engine.spawn(self._move(CallState.RINGING))

    def leg_answered(self) -> None:
        self.engine.spawn(self._answered())

    def leg_ended(self, reason: str, detail: CarrierError | None = None) -> None:
        self.engine.spawn(self.end(reason, from_peer=True, detail=detail))

    def leg_dtmf(self, digit: str, duration_ms: int) -> None:
        """The peer pressed a key: every attached client that listens hears of it, and
        ``call.dtmf`` is written."""
        if self.state == CallState.ENDED:
            return
        for clients in list(self.clients.values()):
            for client in list(clients):
                on_dtmf = getattr(client, "on_dtmf", None)
                if on_dtmf is not None:
                    try:
                        on_dtmf(digit, duration_ms)
                    except Exception:
                        logger.exception("A client failed on DTMF")
        self.engine.spawn(store.dtmf_received(self.call_pk, digit, duration_ms))

    async def _answered(self) -> None:
        if await self._move(CallState.ACTIVE):
            self._media_on()

    def _media_on(self) -> None:
        hooks.call_active(self)
        self.engine.clock.add(self)
        self._later(settings.CALL_MAX_DURATION_S, self.end, EndReason.MAX_DURATION)

    async def _move(
        self,
        to: str,
        end_reason: str = "",
        *,
        only_from: frozenset[str] | None = None,
        detail: CarrierError | None = None,
    ) -> bool:
        end_detail = (
            None
            if detail is None
            else {
                "carrier": self.carrier,
                "code": detail.code,
                "message": detail.message,
            }
        )
        async with self._lock:
            if only_from is not None and self.state not in only_from:
                return False
            result = await store.transition(
                self.call_pk, to, end_reason, only_from, end_detail
            )
            if result is None:
                return False
            self.state, self.snapshot = to, result
        if to == CallState.ENDED:
            self._finish()
        else:
            self._notify_update()
        return True

    def _notify_update(self) -> None:
        for observer in list(self.observers):
            try:
                observer.on_call_update(self.snapshot)
            except Exception:
                logger.exception("Call observer failed on update")

    def _finish(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._gone_timer is not None:
            self._gone_timer.cancel()
            self._gone_timer = None
        self.engine.clock.remove(self)
        hooks.call_ended(self)
        for observer in list(self.observers):
            try:
                observer.on_call_ended(self.snapshot)
            except Exception:
                logger.exception("Call observer failed on end")
        self.observers.clear()
        self.subscribers.clear()
        self.sources.clear()
        self.clients.clear()
        self.engine.forget(self)
        self.ended.set()

    def drop(self) -> None:
        """Stop locally without touching the database: the call ended elsewhere."""
        if self.state != CallState.ENDED:
            self.state = CallState.ENDED
            if self.leg is not None:
                self.engine.spawn(self.leg.hangup())
            self._finish()

    # ------------------------------------------------------------ commands
    async def end(
        self,
        reason: str = EndReason.COMPLETED,
        *,
        from_peer: bool = False,
        detail: CarrierError | None = None,
    ) -> dict[str, Any]:
        """Hang up (idempotent once ended); ``detail`` is what the network said."""
        if self.state == CallState.ENDED:
            return self.snapshot
        moved = await self._move(CallState.ENDED, reason, detail=detail)
        if moved and not from_peer and self.leg is not None:
            await self.leg.hangup()
        if not moved:
            # Someone else ended it first (a race, or another process): mirror the outcome.
            current = await store.snapshot(self.call_pk)
            if current["state"] == CallState.ENDED and self.state != CallState.ENDED:
                self.state, self.snapshot = CallState.ENDED, current
                if self.leg is not None:
                    await self.leg.hangup()
                self._finish()
        return self.snapshot

    async def accept(self) -> dict[str, Any]:
        """Answer a ringing incoming call: media starts flowing."""
        if self.direction != Direction.INCOMING:
            raise Conflict(
                "Only incoming calls can be accepted.", code="call_not_incoming"
            )
        if not await self._move(CallState.ACTIVE):
            raise self._not_ringing(await store.snapshot(self.call_pk))
        if self.leg is not None:
            await self.leg.answer()
        self._media_on()
        return self.snapshot

    async def reject(self) -> dict[str, Any]:
        """Refuse a ringing incoming call."""
        if self.direction != Direction.INCOMING:
            raise Conflict(
                "Only incoming calls can be rejected.", code="call_not_incoming"
            )
        if self.state != CallState.RINGING:
            raise self._not_ringing(self.snapshot)
        if not await self._move(
            CallState.ENDED,
            EndReason.REJECTED,
            only_from=frozenset({CallState.RINGING}),
        ):
            raise self._not_ringing(await store.snapshot(self.call_pk))
        if self.leg is not None:
            await self.leg.reject()
        return self.snapshot

    @staticmethod
    def _not_ringing(snapshot: dict[str, Any]) -> Conflict:
        if snapshot["state"] == CallState.ENDED:
            return Conflict("The call has ended.", code="call_not_active")
        return Conflict(
            f"The call is {snapshot['state']}, not ringing.", code="call_not_ringing"
        )

    async def send_dtmf(self, digits: str) -> dict[str, Any]:
        """Send DTMF to the peer (RFC 4733 on SIP); the digits go out in the background."""
        # A transition in flight holds the lock until its state is set here too: a
        # client that already read the call as active from the database is not told
        # it is still ringing.
        async with self._lock:
            state = self.state
        if state == CallState.ENDED:
            raise Conflict("The call has ended.", code="call_not_active")
        if state != CallState.ACTIVE:
            raise Conflict(
                f"The call is {state}; DTMF needs an active call.",
                code="call_not_active",
            )
        leg = self.leg
        if leg is None or not leg.supports_dtmf:
            raise Conflict(
                f"The {self.carrier} carrier cannot send DTMF.",
                code="not_supported_by_carrier",
            )
        self.engine.spawn(leg.send_dtmf(digits))
        return self.snapshot

    async def mute(self, muted: bool) -> dict[str, Any]:
        """Mute or unmute: while muted the peer hears silence."""
        async with self._lock:
            if self.state == CallState.ENDED:
                raise Conflict("The call has ended.", code="call_not_active")
            result = await store.set_muted(self.call_pk, muted)
            if result is None:
                raise Conflict("The call has ended.", code="call_not_active")
            self.muted = muted
            self.snapshot = result
        self._notify_update()
        return self.snapshot
