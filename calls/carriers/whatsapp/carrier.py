"""``WhatsAppCarrier``: lines are business phone numbers on Meta's Cloud API.

A line is held by one process (``calls/lines.py``): bringing it up reads the number from
the Graph API (the token's proof), and the webhooks Meta sends for it are handed to that
process (``webhook.py``), which places, rings and ends the calls whose WebRTC it hosts.
Meta may deliver a webhook twice, late or before the reply to the request that caused it:
items for a call not known yet wait a little for it, and a call already ended or seen
never rings twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from calls.carriers.base import (
    Carrier,
    CarrierError,
    CarrierLeg,
    LegInfo,
    LegListener,
    LineInfo,
)
from calls.carriers.whatsapp import settings as wa_settings
from calls.carriers.whatsapp.graph import graph
from calls.carriers.whatsapp.leg import WhatsAppLeg
from calls.carriers.whatsapp.rtc import check_offer, loops

if TYPE_CHECKING:
    from calls.runtime.engine import Engine

logger = logging.getLogger(__name__)

# The channel-layer message that carries a line's webhook items to its holder.
MESSAGE = "whatsapp.webhook"
# Call ids remembered as ended (a late or repeated ``connect`` never rings), and how
# long items for a call not known yet wait for it.
FINISHED_KEPT = 10_000
EARLY_KEPT_S = 30.0


def _record_ref(call_id: str, wacid: str) -> None:
    from calls.models import Call

    Call.objects.filter(public_id=call_id).update(carrier_ref=wacid)


def _seen(wacid: str) -> bool:
    from calls.models import Call

    return Call.objects.filter(carrier_ref=wacid).exists()


def _set_address(session_id: str, address: str) -> None:
    from calls.models import Session

    Session.objects.filter(public_id=session_id).update(address=address)


def _line_settings(session_id: str) -> wa_settings.WhatsAppSettings | None:
    from calls.credentials import CredentialsUnreadable, unseal
    from calls.models import Session

    session = Session.objects.filter(public_id=session_id, carrier="whatsapp").first()
    if session is None:
        return None
    try:
        secrets = unseal(session.credentials)
    except CredentialsUnreadable:
        return None
    return wa_settings.parse(session.carrier_settings or {}, secrets)


def display_to_e164(number: str) -> str:
    digits = "".join(ch for ch in str(number) if ch.isdigit())
    return f"+{digits}" if digits else ""


class WhatsAppCarrier(Carrier):
    name = "whatsapp"
    holds_lines = True

    def __init__(self) -> None:
        # Lines this process holds: session id → settings (with the secrets).
        self.lines: dict[str, wa_settings.WhatsAppSettings] = {}
        # Calls in progress here, by Meta's call id.
        self.legs: dict[str, WhatsAppLeg] = {}
        self.finished: OrderedDict[str, None] = OrderedDict()
        # Items for call ids not known yet (a webhook faster than the Graph API's reply).
        self.early: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self.tasks: set[asyncio.Future[Any]] = set()

    # ------------------------------------------------------------ settings
    def validate_settings(
        self,
        raw: Mapping[str, Any] | None,
        *,
        current: Mapping[str, Any] | None = None,
        current_secrets: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return wa_settings.validate(raw, current, current_secrets)

    def describe_settings(
        self, shown: Mapping[str, Any], secrets: Mapping[str, Any], session_id: str = ""
    ) -> dict[str, Any] | None:
        return wa_settings.describe(shown, secrets, session_id)

    def normalize_address(self, to: str) -> str:
        return wa_settings.normalize_address(to)

    # ------------------------------------------------------------ lifecycle
    async def start(self, engine: Engine) -> None:
        from calls.runtime.engine import register_message

        register_message(MESSAGE, self._on_message)

    async def stop(self) -> None:
        legs, self.legs = list(self.legs.values()), {}
        for leg in legs:
            leg.ended = True
            await leg._close_peer()
        self.lines.clear()
        await graph.close()
        loops.stop()

    def _on_message(self, engine: Engine, message: dict[str, Any]) -> None:
        engine.spawn(self.handle(str(message["session_id"]), list(message["items"])))

    def housekeeping(self) -> None:
        cutoff = time.monotonic() - EARLY_KEPT_S
        for wacid, (since, _) in list(self.early.items()):
            if since < cutoff:
                self.early.pop(wacid, None)

    # ------------------------------------------------------------ lines
    async def line_up(self, line: LineInfo) -> None:
        from calls import lines

        settings = wa_settings.parse(line.settings, line.secrets)
        try:
            number = await graph.read_number(settings)
        except CarrierError as error:
            self.lines.pop(line.session_id, None)
            await database_sync_to_async(lines.line_failed, thread_sensitive=False)(
                line.session_id, error.code, error.message
            )
            return
        self.lines[line.session_id] = settings
        address = display_to_e164(str(number.get("display_phone_number") or ""))
        if address:
            await database_sync_to_async(_set_address, thread_sensitive=False)(
                line.session_id, address
            )
        await database_sync_to_async(lines.line_connected, thread_sensitive=False)(
            line.session_id
        )

    async def line_down(self, session_id: str) -> None:
        self.lines.pop(session_id, None)

    # ------------------------------------------------------------ calls we place
    async def dial(self, info: LegInfo, listener: LegListener) -> CarrierLeg:
        if info.line is None:
            raise CarrierError("no_line", "The call has no WhatsApp line.")
        settings = wa_settings.parse(info.line.settings, info.line.secrets)
        leg = WhatsAppLeg(self, settings, info.session_id, incoming=False)
        leg.bind(listener)
        await leg.place(info.peer_address)
        self.legs[leg.wacid] = leg
        await database_sync_to_async(_record_ref, thread_sensitive=False)(
            info.call_id, leg.wacid
        )
        parked = self.early.pop(leg.wacid, None)
        if parked is not None:
            for item in parked[1]:
                await self._handle_item(info.session_id, item)
        return leg

    def leg_done(self, leg: WhatsAppLeg) -> None:
        if leg.wacid:
            self.legs.pop(leg.wacid, None)
            self._finish(leg.wacid)

    def _finish(self, wacid: str) -> None:
        self.finished[wacid] = None
        self.finished.move_to_end(wacid)
        while len(self.finished) > FINISHED_KEPT:
            self.finished.popitem(last=False)

    # ------------------------------------------------------------ Meta's webhooks
    async def handle(self, session_id: str, items: list[dict[str, Any]]) -> None:
        """A line's webhook items, in the order Meta sent them (on the home loop)."""
        for item in items:
            try:
                await self._handle_item(session_id, item)
            except Exception:
                logger.exception("WhatsApp webhook item failed (%s)", item.get("kind"))

    async def _handle_item(self, session_id: str, item: dict[str, Any]) -> None:
        wacid = str(item.get("id") or "")
        if not wacid:
            return
        leg = self.legs.get(wacid)
        if item.get("kind") == "status":
            if leg is not None:
                leg.on_status(str(item.get("status") or ""))
            elif wacid not in self.finished:
                self._park(wacid, item)
            return
        event = item.get("event")
        session = item.get("session") or {}
        if event == "connect" and session.get("sdp_type") == "offer":
            await self._incoming(session_id, wacid, item)
        elif event == "connect":
            if leg is not None:
                await leg.on_answer(str(session.get("sdp") or ""))
            elif wacid not in self.finished:
                self._park(wacid, item)
        elif event == "terminate":
            if leg is not None:
                errors = [e for e in item.get("errors") or [] if isinstance(e, dict)]
                leg.on_terminate(str(item.get("status") or ""), errors)
            else:
                # A terminate before its connect: the call never rings.
                self._park(wacid, item)
                self._finish(wacid)

    def _park(self, wacid: str, item: dict[str, Any]) -> None:
        _, items = self.early.setdefault(wacid, (time.monotonic(), []))
        if len(items) < 20:
            items.append(item)

    async def _incoming(
        self, session_id: str, wacid: str, item: dict[str, Any]
    ) -> None:
        from calls.runtime.inbound import offer_incoming
        from config.errors import ApplicationError

        if wacid in self.legs or wacid in self.finished:
            return
        if await database_sync_to_async(_seen, thread_sensitive=False)(wacid):
            self._finish(wacid)
            return
        settings = self.lines.get(session_id)
        if settings is None:
            settings = await database_sync_to_async(
                _line_settings, thread_sensitive=False
            )(session_id)
            if settings is None:
                return
        offer = str((item.get("session") or {}).get("sdp") or "")
        problem = check_offer(offer)
        caller = display_to_e164(str(item.get("from") or "")) or "unknown"
        if problem is not None:
            logger.info("Refused WhatsApp call %s: %s", wacid, problem)
            self._finish(wacid)
            await self._refuse(settings, wacid)
            return
        leg = WhatsAppLeg(
            self, settings, session_id, incoming=True, wacid=wacid, offer=offer
        )
        self.legs[wacid] = leg
        try:
            snapshot = await offer_incoming(session_id, caller, leg)
        except ApplicationError as error:
            logger.info("WhatsApp call %s not offered: %s", wacid, error.code)
            self.legs.pop(wacid, None)
            self._finish(wacid)
            await self._refuse(settings, wacid)
            return
        await database_sync_to_async(_record_ref, thread_sensitive=False)(
            str(snapshot["callId"]), wacid
        )
        parked = self.early.pop(wacid, None)
        if parked is not None:
            for later in parked[1]:
                await self._handle_item(session_id, later)

    async def _refuse(self, settings: wa_settings.WhatsAppSettings, wacid: str) -> None:
        try:
            await graph.call_action(settings, "reject", call_id=wacid)
        except CarrierError as error:
            logger.info("Graph API reject of %s: %s", wacid, error.code)
