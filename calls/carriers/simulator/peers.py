"""The simulated network's peers (DESIGN §4.4): their signalling and their audio.

The number at the end of the peer's JID chooses its behaviour; incoming calls name it.
Timings come from settings (``SIM_DIAL_MS``, ``SIM_RING_MS``, ``SIM_HANGUP_AFTER_MS``) so
tests can shrink them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
from django.conf import settings

from audio import FRAME_SAMPLES, SAMPLE_RATE, Frame
from calls.carriers.base import CarrierError, CarrierLeg, LegListener

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


INCOMING_BEHAVIOURS = ("echo", "talker", "hangup_after_5s", "caller_gives_up")


def outgoing_behaviour(peer_address: str) -> str:
    digits = peer_address.split("@", 1)[0]
    return OUTGOING_BEHAVIOURS.get(digits[-4:], "echo")


class SimulatedLeg(CarrierLeg):
    """A simulated peer's signalling; subclasses decide what it says."""

    def __init__(self, behaviour: str, listener: LegListener | None = None) -> None:
        self.listener = listener
        self.behaviour = behaviour
        self.ended = False
        self._timers: list[asyncio.TimerHandle] = []
        self._loop = asyncio.get_running_loop()
        self._out = np.zeros(FRAME_SAMPLES, dtype=np.float32)

    def bind(self, listener: LegListener) -> None:
        super().bind(listener)
        if self.behaviour == "caller_gives_up":
            # From the moment the call rings here, as long as the platform lets it.
            self.later(
                settings.CALL_RING_TIMEOUT_S * 1000,
                lambda: self.end_from_peer("missed"),
            )

    def later(self, ms: float, action: Callable[[], None]) -> None:
        self._timers.append(self._loop.call_later(ms / 1000, self._guarded, action))

    def _guarded(self, action: Callable[[], None]) -> None:
        if not self.ended:
            action()

    def end_from_peer(self, reason: str, detail: CarrierError | None = None) -> None:
        self.ended = True
        self._cancel()
        if self.listener is not None:
            self.listener.leg_ended(reason, detail)

    def ring(self) -> None:
        if self.listener is not None:
            self.listener.leg_ringing()

    def pick_up(self) -> None:
        if self.listener is not None:
            self.listener.leg_answered()

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

    def __init__(self, behaviour: str, listener: LegListener | None = None) -> None:
        super().__init__(behaviour, listener)
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

    def __init__(self, behaviour: str, listener: LegListener | None = None) -> None:
        super().__init__(behaviour, listener)
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


def make_leg(behaviour: str, listener: LegListener | None = None) -> SimulatedLeg:
    kind = TalkerLeg if behaviour == "talker" else EchoLeg
    return kind(behaviour, listener)


UNREACHABLE = CarrierError("unreachable", "The simulated peer is unreachable.")


def dial(listener: LegListener, peer_address: str) -> SimulatedLeg:
    """Call a simulated peer: its number's behaviour plays out on timers."""
    behaviour = outgoing_behaviour(peer_address)
    leg = make_leg(behaviour, listener)
    dial_ms = settings.SIM_DIAL_MS
    ring_ms = settings.SIM_RING_MS
    if behaviour == "unreachable":
        leg.later(dial_ms, lambda: leg.end_from_peer("failed", UNREACHABLE))
    elif behaviour == "busy":
        leg.later(dial_ms, lambda: leg.end_from_peer("busy"))
    else:
        leg.later(dial_ms, leg.ring)
        if behaviour == "declines":
            leg.later(dial_ms + ring_ms, lambda: leg.end_from_peer("declined"))
        elif behaviour != "no_answer":
            leg.later(dial_ms + ring_ms, leg.pick_up)
            if behaviour == "hangup_after_5s":
                hangup_at = dial_ms + ring_ms + settings.SIM_HANGUP_AFTER_MS
                leg.later(hangup_at, lambda: leg.end_from_peer("remote_hangup"))
    return leg


def caller(behaviour: str) -> SimulatedLeg:
    """A simulated peer calling us (its leg rings until accepted, rejected or given up)."""
    return make_leg(behaviour)
