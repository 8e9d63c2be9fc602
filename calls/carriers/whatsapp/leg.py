"""One WhatsApp call's leg: Graph API signalling, webhooks mapped to the runtime, WebRTC.

Signalling runs on the home loop (Graph API requests; the webhooks Meta sends, handed
over by ``carrier.WhatsAppCarrier.handle``); the WebRTC connection lives on an RTC loop
(``rtc.py``). ``exchange`` only moves 20 ms frames through the peer's two queues.

How Meta's signals end a call (DESIGN §11.2): a ``terminate`` of an answered call is a
``remote_hangup``; before an answer, ``REJECTED`` is ``declined``, a terminate carrying
``errors`` is ``failed`` with Meta's code, and any other is ``no_answer`` (a call we
placed) or ``missed`` (a call the user placed and gave up on). WebRTC that does not
connect within ``WHATSAPP_CONNECT_TIMEOUT_S`` of the answer, or fails later, ends the
call ``failed`` (``ice_failed``) and terminates it at Meta.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings

from audio import FRAME_SAMPLES, Frame
from calls.carriers.base import CarrierError, CarrierLeg
from calls.carriers.whatsapp.graph import graph
from calls.carriers.whatsapp.rtc import Peer, loops, on_loop
from calls.carriers.whatsapp.settings import WhatsAppSettings, wa_id

if TYPE_CHECKING:
    from calls.carriers.whatsapp.carrier import WhatsAppCarrier

logger = logging.getLogger(__name__)

# Frames gathered before received audio is played, and again after it ran dry: enough
# to ride over the RTC thread's scheduling without a gap.
PREBUFFER_FRAMES = 2


class WhatsAppLeg(CarrierLeg):
    """A call through Meta's Calling API, placed by us or by a WhatsApp user."""

    def __init__(
        self,
        carrier: WhatsAppCarrier,
        line: WhatsAppSettings,
        session_id: str,
        *,
        incoming: bool,
        wacid: str = "",
        offer: str = "",
    ) -> None:
        self.carrier = carrier
        self.line = line
        self.session_id = session_id
        self.incoming = incoming
        self.wacid = wacid
        self.offer = offer
        self.answered = False
        self.ended = False
        self.media_up = False
        self._home = asyncio.get_running_loop()
        self._rtc = loops.pick()
        self.peer = Peer(self._rtc, self._rtc_state)
        self._out = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        self._playing = False
        self._watchdog: asyncio.TimerHandle | None = None
        self.underruns = 0

    # ------------------------------------------------------------ media, per tick
    def exchange(self, outbound: Frame) -> Frame:
        peer = self.peer
        if self.media_up:
            queue = peer.outbound
            queue.append(
                (np.clip(outbound, -1.0, 1.0) * 32767.0).astype(np.int16, copy=False)
            )
            if len(queue) > 10:
                queue.popleft()
        inbound = peer.inbound
        if not self._playing and len(inbound) >= PREBUFFER_FRAMES:
            self._playing = True
        if self._playing and inbound:
            return inbound.popleft()
        if self._playing:
            self._playing = False
            self.underruns += 1
        out = self._out
        out.fill(0.0)
        return out

    # ------------------------------------------------------------ WebRTC state
    def _rtc_state(self, state: str) -> None:
        """On the RTC loop: hand the new connection state to the home loop."""
        self._home.call_soon_threadsafe(self._state_changed, state)

    def _state_changed(self, state: str) -> None:
        if self.ended:
            return
        if state == "connected":
            self.media_up = True
            self._cancel_watchdog()
        elif state == "failed":
            self._fail(
                CarrierError("ice_failed", "The WebRTC media connection failed.")
            )

    def _arm_watchdog(self) -> None:
        """After the answer, media must connect in time or the call fails."""
        self._cancel_watchdog()
        self._watchdog = self._home.call_later(
            settings.WHATSAPP_CONNECT_TIMEOUT_S, self._watchdog_fired
        )

    def _cancel_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _watchdog_fired(self) -> None:
        self._watchdog = None
        if not self.ended and not self.media_up:
            seconds = settings.WHATSAPP_CONNECT_TIMEOUT_S
            self._fail(
                CarrierError(
                    "ice_failed",
                    f"WebRTC media (ICE/DTLS) did not connect within {seconds:g} s.",
                )
            )

    def _fail(self, detail: CarrierError) -> None:
        """End the call from our side for a media failure: tell Meta and the runtime."""
        if self.ended:
            return
        self.ended = True
        self.carrier.leg_done(self)
        self._cancel_watchdog()
        self._spawn(self._terminate_at_meta("terminate"))
        if self.listener is not None:
            self.listener.leg_ended("failed", detail)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.carrier.tasks.add(task)
        task.add_done_callback(self.carrier.tasks.discard)

    async def _terminate_at_meta(self, action: str) -> None:
        try:
            if self.wacid:
                await graph.call_action(self.line, action, call_id=self.wacid)
        except CarrierError as error:
            logger.info("Graph API %s of %s: %s", action, self.wacid, error.code)
        finally:
            await self._close_peer()

    async def _close_peer(self) -> None:
        self._cancel_watchdog()
        self.media_up = False
        with contextlib.suppress(RuntimeError):  # the RTC loop is gone (stopping)
            await on_loop(self._rtc, self.peer.close())

    # ------------------------------------------------------------ placing a call
    async def place(self, to: str) -> None:
        """Offer → ``action: connect``; raise CarrierError when Meta refuses."""
        sdp = await on_loop(self._rtc, self.peer.offer())
        try:
            reply = await graph.call_action(
                self.line,
                "connect",
                to=wa_id(to),
                session={"sdp_type": "offer", "sdp": sdp},
            )
        except CarrierError:
            self.ended = True
            await self._close_peer()
            raise
        calls = reply.get("calls") or [{}]
        self.wacid = str(calls[0].get("id") or "")
        if not self.wacid:
            self.ended = True
            await self._close_peer()
            raise CarrierError(
                "graph_bad_response", "The Graph API gave the call no id."
            )

    # ------------------------------------------------------------ Meta's webhooks
    async def on_answer(self, sdp: str) -> None:
        """Business-initiated: the user's answer (they picked up)."""
        if self.ended or self.incoming or self.answered:
            return
        try:
            await on_loop(self._rtc, self.peer.apply_answer(sdp))
        except Exception as error:
            logger.info("Unusable answer SDP for %s: %s", self.wacid, error)
            self._fail(
                CarrierError("sdp_invalid", "Meta's answer SDP could not be used.")
            )
            return
        self._answered()

    def _answered(self) -> None:
        if self.answered or self.ended:
            return
        self.answered = True
        if not self.media_up:
            self._arm_watchdog()
        if self.listener is not None:
            self.listener.leg_answered()

    def on_status(self, status: str) -> None:
        if self.ended:
            return
        status = status.upper()
        if status == "RINGING" and not self.answered:
            if self.listener is not None:
                self.listener.leg_ringing()
        elif status == "REJECTED" and not self.answered:
            self._ended_by_meta("declined", None)
        # ACCEPTED is Meta's record of an answer already applied (``on_answer``).

    def on_terminate(self, status: str, errors: list[dict[str, Any]]) -> None:
        if self.ended:
            return
        status = status.upper()
        detail = None
        if errors:
            first = errors[0]
            code = str(first.get("code") or "terminated")
            message = str(
                first.get("message") or first.get("title") or "Meta ended the call."
            )
            detail = CarrierError(code, message)
        if self.answered:
            reason = "remote_hangup"
            detail = None
        elif status == "REJECTED":
            reason = "declined"
            detail = None
        elif detail is not None:
            reason = "failed"
        else:
            reason = "missed" if self.incoming else "no_answer"
        self._ended_by_meta(reason, detail)

    def _ended_by_meta(self, reason: str, detail: CarrierError | None) -> None:
        self.ended = True
        self.carrier.leg_done(self)
        self._cancel_watchdog()
        self._spawn(self._close_peer())
        if self.listener is not None:
            self.listener.leg_ended(reason, detail)

    # ------------------------------------------------------------ the runtime's commands
    async def answer(self) -> None:
        """Accept a user's call: our answer to their offer, ``pre_accept``, ``accept``."""
        try:
            sdp = await on_loop(self._rtc, self.peer.answer_to(self.offer))
        except Exception as error:
            logger.info("No answer to the offer of %s: %s", self.wacid, error)
            self._fail(
                CarrierError(
                    "sdp_negotiation_failed",
                    "No WebRTC answer could be made to the caller's offer.",
                )
            )
            return
        session = {"sdp_type": "answer", "sdp": sdp}
        try:
            for action in ("pre_accept", "accept"):
                await graph.call_action(
                    self.line, action, call_id=self.wacid, session=session
                )
        except CarrierError as error:
            self.ended = True
            self.carrier.leg_done(self)
            await self._close_peer()
            if self.listener is not None:
                self.listener.leg_ended("failed", error)
            return
        self.answered = True
        if not self.media_up and not self.ended:
            self._arm_watchdog()

    async def reject(self) -> None:
        if self.ended:
            return
        self.ended = True
        self.carrier.leg_done(self)
        await self._terminate_at_meta("reject")

    async def hangup(self) -> None:
        if self.ended:
            return
        self.ended = True
        self.carrier.leg_done(self)
        if self.incoming and not self.answered:
            await self._terminate_at_meta("reject")
        else:
            await self._terminate_at_meta("terminate")
