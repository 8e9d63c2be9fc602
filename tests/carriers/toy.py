"""A toy carrier, written against ``calls/carriers/base.py`` alone, for the contract suite.

It is the proof that the seam holds: enabled by settings only (``CARRIERS`` and
``SWITCHBOARD_CARRIERS``), with no edit anywhere else, it passes the same contract as
the simulator. Its network lives in this process: lines that must be held (so the lease
and the line reports are exercised), a write-only ``token`` that opens them, addresses
``toy:<behaviour>``, and peers whose audio travels through the network's own buffers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from channels.db import database_sync_to_async

from audio import FRAME_SAMPLES, Frame
from calls import lines
from calls.carriers.base import (
    Carrier,
    CarrierError,
    CarrierLeg,
    LegInfo,
    LegListener,
    LineInfo,
)
from calls.runtime.inbound import offer_incoming
from config.errors import InvalidRequest

TOKEN = "open-sesame"
ECHO_DELAY_FRAMES = 3
DIAL_S = 0.02
RING_S = 0.06
HANGUP_AFTER_S = 0.3
GIVE_UP_AFTER_S = 0.3
SERVICE_UNAVAILABLE = CarrierError("503", "Service Unavailable")


class ToyLeg(CarrierLeg):
    """A toy peer: echoes what it hears ``ECHO_DELAY_FRAMES`` frames later."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.events: list[str] = []
        self.ended = False
        self._timers: list[asyncio.TimerHandle] = []
        self._line: deque[Frame] = deque(
            np.zeros(FRAME_SAMPLES, dtype=np.float32) for _ in range(ECHO_DELAY_FRAMES)
        )

    def later(self, seconds: float, action: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(seconds, self._guarded, action))

    def _guarded(self, action: Callable[[], None]) -> None:
        if not self.ended:
            action()

    def peer_ends(self, reason: str, detail: CarrierError | None = None) -> None:
        self.ended = True
        self.events.append(f"peer:{reason}")
        if self.listener is not None:
            self.listener.leg_ended(reason, detail)

    def exchange(self, outbound: Frame) -> Frame:
        self._line.append(outbound.copy())
        return self._line.popleft()

    async def answer(self) -> None:
        self.events.append("answer")
        if self.behaviour == "hangs_up":
            self.later(HANGUP_AFTER_S, lambda: self.peer_ends("remote_hangup"))

    async def reject(self) -> None:
        self.events.append("reject")
        self._stop()

    async def hangup(self) -> None:
        self.events.append("hangup")
        self._stop()

    def _stop(self) -> None:
        self.ended = True
        for timer in self._timers:
            timer.cancel()


class ToyCarrier(Carrier):
    name = "toy"
    holds_lines = True

    def __init__(self) -> None:
        self.ups: list[str] = []
        self.downs: list[str] = []
        self.legs: dict[str, ToyLeg] = {}
        self.started = 0

    # ------------------------------------------------------------ settings
    def validate_settings(
        self,
        raw: Mapping[str, Any] | None,
        *,
        current: Mapping[str, Any] | None = None,
        current_secrets: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        raw = dict(raw or {})
        shown = dict(current or {})
        secrets = dict(current_secrets or {})
        for key in raw:
            if key not in ("server", "token"):
                raise InvalidRequest(f"Unknown setting {key!r}.", param=f"toy.{key}")
        if "server" in raw:
            shown["server"] = str(raw["server"])
        if "token" in raw:
            secrets["token"] = str(raw["token"])
        if not shown.get("server"):
            raise InvalidRequest("Give the toy server.", param="toy.server")
        if not secrets.get("token"):
            raise InvalidRequest("Give the toy token.", param="toy.token")
        return shown, secrets

    def describe_settings(
        self, shown: Mapping[str, Any], secrets: Mapping[str, Any], session_id: str = ""
    ) -> dict[str, Any] | None:
        token = str(secrets.get("token", ""))
        return {
            "server": shown.get("server"),
            "hasToken": bool(token),
            "tokenLast4": token[-4:] or None,
        }

    def normalize_address(self, to: str) -> str:
        if not to.startswith("toy:") or not to[4:].isidentifier():
            raise InvalidRequest("Must be toy:<name>.", param="to")
        return to

    # ------------------------------------------------------------ lines
    async def line_up(self, line: LineInfo) -> None:
        self.ups.append(line.session_id)
        if line.secrets.get("token") != TOKEN:
            raise CarrierError("401", "Unauthorized: the toy server refused the token.")
        await database_sync_to_async(lines.line_connected, thread_sensitive=False)(
            line.session_id
        )

    async def line_down(self, session_id: str) -> None:
        self.downs.append(session_id)

    async def start(self, engine: Any) -> None:
        self.started += 1

    # ------------------------------------------------------------ calls
    async def dial(self, info: LegInfo, listener: LegListener) -> CarrierLeg:
        behaviour = info.peer_address.split(":", 1)[1]
        if behaviour == "unreachable":
            raise SERVICE_UNAVAILABLE
        leg = ToyLeg(behaviour)
        leg.bind(listener)
        self.legs[info.call_id] = leg
        if behaviour == "busy":
            leg.later(DIAL_S, lambda: leg.peer_ends("busy"))
            return leg
        leg.later(DIAL_S, listener.leg_ringing)
        if behaviour == "declines":
            leg.later(DIAL_S + RING_S, lambda: leg.peer_ends("declined"))
        elif behaviour != "no_answer":
            leg.later(DIAL_S + RING_S, listener.leg_answered)
            if behaviour == "hangs_up":
                leg.later(
                    DIAL_S + RING_S + HANGUP_AFTER_S,
                    lambda: leg.peer_ends("remote_hangup"),
                )
        return leg

    async def call_in(self, session_id: str, caller: str, behaviour: str) -> str:
        """The toy network delivers a call to a session; returns its call id."""
        leg = ToyLeg(behaviour)
        if behaviour == "gives_up":
            leg.later(GIVE_UP_AFTER_S, lambda: leg.peer_ends("missed"))
        snapshot = await offer_incoming(session_id, caller, leg)
        self.legs[snapshot["callId"]] = leg
        return str(snapshot["callId"])
