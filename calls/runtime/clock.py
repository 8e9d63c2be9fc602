"""One media clock per process: every 20 ms it ticks every runtime with media flowing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

FRAME_S = 0.020
PHASES = 4
# Behind by more than this, the clock resynchronises instead of bursting to catch up.
MAX_CATCH_UP_S = 0.200
LATENESS_WINDOW = 4096


class Tickable(Protocol):
    def tick(self) -> None: ...


class MediaClock:
    """Ticks each member at 50 Hz on absolute deadlines, so lateness never accumulates.

    Members are spread over ``PHASES`` phases of the 20 ms frame: the clock wakes every
    5 ms and ticks one phase's members, each of them exactly every 20 ms. Ticking every
    call at the same instant would send every call's frame in one burst, and the last
    calls of a large burst (and their clients, reading a burst of frames) would wait for
    all the others.
    """

    def __init__(self, on_error: Callable[[Tickable, BaseException], None]) -> None:
        self._members: dict[int, tuple[Tickable, int]] = {}
        self._phases: list[tuple[Tickable, ...]] = [() for _ in range(PHASES)]
        self._on_error = on_error
        # Called after each whole frame (every phase ticked once): the frames its members
        # handed out are still valid then, until each member's next tick.
        self.frame_listeners: list[Callable[[], None]] = []
        self.ticks = 0  # whole frames: every member has been ticked this many times
        self.resyncs = 0
        self.lateness = np.zeros(LATENESS_WINDOW, dtype=np.float64)
        self.tick_cost = np.zeros(LATENESS_WINDOW, dtype=np.float64)
        self._steps = 0
        self._task: asyncio.Task[None] | None = None

    def add(self, member: Tickable) -> None:
        if id(member) in self._members:
            return
        phase = min(range(PHASES), key=lambda p: len(self._phases[p]))
        self._members[id(member)] = (member, phase)
        self._rebuild(phase)

    def remove(self, member: Tickable) -> None:
        entry = self._members.pop(id(member), None)
        if entry is not None:
            self._rebuild(entry[1])

    def _rebuild(self, phase: int) -> None:
        self._phases[phase] = tuple(
            member for member, at in self._members.values() if at == phase
        )

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: object) -> bool:
        entry = self._members.get(id(member))
        return entry is not None and entry[0] is member

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="media-clock"
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def lateness_ms(self) -> np.ndarray:
        """The recent steps' lateness in milliseconds (for benchmarks and the admin)."""
        count = min(self._steps, LATENESS_WINDOW)
        return self.lateness[:count] * 1000

    def tick_cost_ms(self) -> np.ndarray:
        """The recent steps' duration (one phase's ticks each) in milliseconds."""
        count = min(self._steps, LATENESS_WINDOW)
        return self.tick_cost[:count] * 1000

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        step_s = FRAME_S / PHASES
        while True:
            deadline += step_s
            delay = deadline - loop.time()
            # Sleep even when late (0 s) so sockets get served between catch-up steps.
            await asyncio.sleep(delay if delay > 0 else 0)
            now = loop.time()
            late = now - deadline
            if late > MAX_CATCH_UP_S:
                self.resyncs += 1
                deadline = now
            step = self._steps
            slot = step % LATENESS_WINDOW
            self.lateness[slot] = late if late > 0 else 0.0
            for member in self._phases[step % PHASES]:
                try:
                    member.tick()
                except Exception as exc:  # one broken call must not stop the others
                    self.remove(member)
                    self._on_error(member, exc)
            self._steps = step + 1
            if self._steps % PHASES == 0:
                self.ticks += 1
                for listener in self.frame_listeners:
                    try:
                        listener()
                    except Exception:
                        logger.exception("A media clock frame listener failed")
            self.tick_cost[slot] = loop.time() - now
