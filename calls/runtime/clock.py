"""One media clock per process: every 20 ms it ticks every runtime with media flowing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

FRAME_S = 0.020
# Behind by more than this, the clock resynchronises instead of bursting to catch up.
MAX_CATCH_UP_S = 0.200
LATENESS_WINDOW = 4096


class Tickable(Protocol):
    def tick(self) -> None: ...


class MediaClock:
    """Ticks its members at 50 Hz on absolute deadlines, so lateness never accumulates."""

    def __init__(self, on_error: Callable[[Tickable, BaseException], None]) -> None:
        self._members: dict[int, Tickable] = {}
        self._order: tuple[Tickable, ...] = ()
        self._on_error = on_error
        self.ticks = 0
        self.resyncs = 0
        self.lateness = np.zeros(LATENESS_WINDOW, dtype=np.float64)
        self.tick_cost = np.zeros(LATENESS_WINDOW, dtype=np.float64)
        self._task: asyncio.Task[None] | None = None

    def add(self, member: Tickable) -> None:
        self._members[id(member)] = member
        self._order = tuple(self._members.values())

    def remove(self, member: Tickable) -> None:
        if self._members.pop(id(member), None) is not None:
            self._order = tuple(self._members.values())

    def __len__(self) -> int:
        return len(self._order)

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
        """The recent ticks' lateness in milliseconds (for benchmarks and the admin)."""
        count = min(self.ticks, LATENESS_WINDOW)
        return self.lateness[:count] * 1000

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += FRAME_S
            delay = deadline - loop.time()
            # Sleep even when late (0 s) so sockets get served between catch-up ticks.
            await asyncio.sleep(delay if delay > 0 else 0)
            now = loop.time()
            late = now - deadline
            if late > MAX_CATCH_UP_S:
                self.resyncs += 1
                deadline = now
            slot = self.ticks % LATENESS_WINDOW
            self.lateness[slot] = late if late > 0 else 0.0
            for member in self._order:
                try:
                    member.tick()
                except Exception as exc:  # one broken call must not stop the others
                    self.remove(member)
                    self._on_error(member, exc)
            self.tick_cost[slot] = loop.time() - now
            self.ticks += 1
