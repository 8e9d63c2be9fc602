"""A simulated WhatsApp network with deterministic peers (DESIGN §4.4).

The number at the end of the peer's JID chooses its behaviour; incoming calls name it.
Timings come from settings (``SIM_DIAL_MS``, ``SIM_RING_MS``, ``SIM_HANGUP_AFTER_MS``) so
tests can shrink them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
from django.conf import settings

from calls.carriers.base import Carrier, CarrierLeg, Frame, LegInfo, LegListener
from calls.media import FRAME_SAMPLES, SAMPLE_RATE

ECHO_DELAY_FRAMES = 5  # 100 ms at 20 ms per frame

# The talker's test signal: two tones with whole-number frequencies, so it repeats exactly
# every second and any window of it can be computed by ``talker_signal``.
TALKER_TONES_HZ = (440, 1320)
TALKER_AMPLITUDE = 0.25
_t = np.arange(SAMPLE_RATE, dtype=np.float64) / SAMPLE_RATE
TALKER_PERIOD = (
    TALKER_AMPLITUDE * np.sin(2 * np.pi * TALKER_TONES_HZ[0] * _t)
    + TALKER_AMPLITUDE * np.sin(2 * np.pi * TALKER_TONES_HZ[1] * _t)
).astype(np.float32)
del _t


def talker_signal(start_sample: int, count: int) -> Frame:
    """Return the talker's samples ``[start_sample, start_sample + count)``."""
    index = (np.arange(count) + start_sample) % SAMPLE_RATE
    return TALKER_PERIOD[index]


OUTGOING_BEHAVIOURS = {
    "0001": "echo",
    "0002": "talker",
    "0003": "busy",
    "0004": "no_answer",
    "0005": "declines",
    "0006": "hangup_after_5s",
    "0007": "unreachable",
}


def outgoing_behaviour(peer_jid: str) -> str:
    digits = peer_jid.split("@", 1)[0]
    return OUTGOING_BEHAVIOURS.get(digits[-4:], "echo")


class SimulatedLeg(CarrierLeg):
    """A simulated peer's signalling; subclasses decide what it says."""

    def __init__(self, info: LegInfo, listener: LegListener, behaviour: str) -> None:
        self.info = info
        self.listener = listener
        self.behaviour = behaviour
        self.ended = False
        self._timers: list[asyncio.TimerHandle] = []
        self._loop = asyncio.get_running_loop()
        self._out = np.zeros(FRAME_SAMPLES, dtype=np.float32)

    def later(self, ms: float, action: Callable[[], None]) -> None:
        self._timers.append(self._loop.call_later(ms / 1000, self._guarded, action))

    def _guarded(self, action: Callable[[], None]) -> None:
        if not self.ended:
            action()

    def end_from_peer(self, reason: str) -> None:
        self.ended = True
        self._cancel()
        self.listener.leg_ended(reason)

    def _cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    async def answer(self) -> None:
        if self.behaviour == "hangup_after_5s":
            self.later(
                settings.SIM_HANGUP_AFTER_MS,
                lambda: self.end_from_peer("remote_hangup"),
            )

    async def reject(self) -> None:
        self.ended = True
        self._cancel()

    async def hangup(self) -> None:
        self.ended = True
        self._cancel()


class EchoLeg(SimulatedLeg):
    """Returns exactly what it hears, 100 ms later: one frame copy per tick."""

    def __init__(self, info: LegInfo, listener: LegListener, behaviour: str) -> None:
        super().__init__(info, listener, behaviour)
        # One row more than the delay: the row returned stays intact until the next
        # exchange, which is as long as a leg's frame must stay valid.
        delay = np.zeros((ECHO_DELAY_FRAMES + 1, FRAME_SAMPLES), dtype=np.float32)
        self._rows = list(delay)
        self._slot = 0

    def exchange(self, outbound: Frame) -> Frame:
        rows = self._rows
        slot = self._slot
        rows[slot][:] = outbound
        slot = slot + 1 if slot < ECHO_DELAY_FRAMES else 0
        self._slot = slot
        return rows[slot]


class TalkerLeg(SimulatedLeg):
    """Speaks ``talker_signal`` from its first answered frame on, ignoring what it hears."""

    def __init__(self, info: LegInfo, listener: LegListener, behaviour: str) -> None:
        super().__init__(info, listener, behaviour)
        self._position = 0

    def exchange(self, outbound: Frame) -> Frame:
        start = self._position
        end = start + FRAME_SAMPLES
        if end <= SAMPLE_RATE:
            self._out[:] = TALKER_PERIOD[start:end]
        else:
            self._out[:] = talker_signal(start, FRAME_SAMPLES)
        self._position = end % SAMPLE_RATE
        return self._out


def _leg(info: LegInfo, listener: LegListener, behaviour: str) -> SimulatedLeg:
    kind = TalkerLeg if behaviour == "talker" else EchoLeg
    return kind(info, listener, behaviour)


class SimulatorCarrier(Carrier):
    name = "simulator"

    async def dial(self, info: LegInfo, listener: LegListener) -> CarrierLeg:
        behaviour = outgoing_behaviour(info.peer_jid)
        leg = _leg(info, listener, behaviour)
        dial_ms = settings.SIM_DIAL_MS
        ring_ms = settings.SIM_RING_MS
        if behaviour == "unreachable":
            leg.later(dial_ms, lambda: leg.end_from_peer("failed"))
        elif behaviour == "busy":
            leg.later(dial_ms, lambda: leg.end_from_peer("busy"))
        else:
            leg.later(dial_ms, listener.leg_ringing)
            if behaviour == "declines":
                leg.later(dial_ms + ring_ms, lambda: leg.end_from_peer("declined"))
            elif behaviour != "no_answer":
                leg.later(dial_ms + ring_ms, listener.leg_answered)
                if behaviour == "hangup_after_5s":
                    hangup_at = dial_ms + ring_ms + settings.SIM_HANGUP_AFTER_MS
                    leg.later(hangup_at, lambda: leg.end_from_peer("remote_hangup"))
        return leg

    async def incoming(self, info: LegInfo, listener: LegListener) -> CarrierLeg:
        behaviour = info.behavior or "echo"
        leg = _leg(info, listener, behaviour)
        if behaviour == "caller_gives_up":
            leg.later(
                settings.CALL_RING_TIMEOUT_S * 1000, lambda: leg.end_from_peer("missed")
            )
        return leg
