"""One media clock per process: every 20 ms it ticks every runtime with media flowing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

FRAME_S = 0.020
PHASES = 4
# Behind by more than this, the clock resynchronises instead of bursting to catch up.
MAX_CATCH_UP_S = 0.200
LATENESS_WINDOW = 4096
# A phase takes a member aligned to it while it holds fewer than this share of the
# members (of an even spread) and two more: alignment must not pile every call of
# clients that started together into one burst.
ALIGNED_SHARE = 1.25
# A member is moved only for a phase at least this much sooner after its input, on
# average, than its own: each move delays or advances everything in flight once, and
# input that arrives close to the middle of two phases must not flip between them.
ALIGN_GAIN_S = 0.002
# A phase that ticks less than this after an input frame arrived counts as missing it:
# the next frame, arriving a little late, would find its tick gone and wait a whole
# frame, and the playout buffer would keep that frame of delay from then on.
ALIGN_MARGIN_S = 0.002


class Tickable(Protocol):
    def tick(self) -> None: ...


class MediaClock:
    """Ticks each member at 50 Hz on absolute deadlines, so lateness never accumulates.

    Members are spread over ``PHASES`` phases of the 20 ms frame: the clock wakes every
    5 ms and ticks one phase's members, each of them exactly every 20 ms. Ticking every
    call at the same instant would send every call's frame in one burst, and the last
    calls of a large burst (and their clients, reading a burst of frames) would wait for
    all the others.

    A member whose input arrives at a steady moment of the frame (a client streaming in
    real time) can be ``align``-ed: moved to the phase that comes soonest after its
    input arrives, so the input waits for its tick 2–7 ms instead of 0–20. Moves take
    effect between frames: a member is ticked exactly once in every frame. A move to an
    earlier phase shortens one interval between its ticks, and is made only when its
    next input still arrives inside it; a move to a later phase lengthens one, so a
    frame of input more than usual is waiting at the first tick after it: the member's
    ``on_later`` is told, to drop a frame of silence when there is one.
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
        # time.monotonic() when each phase was last ticked.
        self.phase_times = [0.0] * PHASES
        self._moves: dict[int, tuple[int, Callable[[], None] | None]] = {}
        self.aligned = 0  # alignments asked for
        self.moves = 0  # members moved to another phase
        self._task: asyncio.Task[None] | None = None

    def add(self, member: Tickable) -> None:
        if id(member) in self._members:
            return
        phase = min(range(PHASES), key=lambda p: len(self._phases[p]))
        self._members[id(member)] = (member, phase)
        self._rebuild(phase)

    def remove(self, member: Tickable) -> None:
        entry = self._members.pop(id(member), None)
        self._moves.pop(id(member), None)
        if entry is not None:
            self._rebuild(entry[1])

    def phase_of(self, member: Tickable) -> int | None:
        entry = self._members.get(id(member))
        return entry[1] if entry is not None and entry[0] is member else None

    def align(
        self,
        member: Tickable,
        arrivals: Sequence[float],
        on_later: Callable[[], None] | None = None,
    ) -> None:
        """Tick ``member`` in the phase that comes soonest after ``arrivals`` (when its
        recent input frames arrived, by ``time.monotonic()``), from the next frame on;
        the next best if that phase already holds more than its share. ``on_later`` is
        called when the member moves to a later phase (see the class)."""
        entry = self._members.get(id(member))
        if entry is None or entry[0] is not member or not arrivals:
            return
        if not all(self.phase_times):
            return  # not every phase has ticked yet
        self.aligned += 1
        arrived = np.asarray(arrivals, dtype=np.float64)
        # The mean wait from arrival to each phase's tick: a frame that arrives just
        # after a phase ticked (or just before it) waits almost a whole frame for it.
        waits = []
        for at in self.phase_times:
            wait = (at - arrived) % FRAME_S
            wait[wait < ALIGN_MARGIN_S] += FRAME_S
            waits.append(float(wait.mean()))
        now = entry[1]
        room = len(self._members) / PHASES * ALIGNED_SHARE + 2
        for phase in sorted(range(PHASES), key=waits.__getitem__):
            if phase == now or waits[phase] > waits[now] - ALIGN_GAIN_S:
                self._moves.pop(id(member), None)
                return
            # Earlier: the one shorter interval must still hold the next input frame.
            shorter = (now - phase) * FRAME_S / PHASES
            if phase < now and shorter + waits[phase] > FRAME_S - ALIGN_MARGIN_S:
                continue
            coming = sum(1 for to, _ in self._moves.values() if to == phase)
            if len(self._phases[phase]) + coming < room:
                self._moves[id(member)] = (phase, on_later)
                return

    def _apply_moves(self) -> None:
        moves, self._moves = self._moves, {}
        touched: set[int] = set()
        for key, (phase, on_later) in moves.items():
            entry = self._members.get(key)
            if entry is None or entry[1] == phase:
                continue
            touched.update((entry[1], phase))
            self._members[key] = (entry[0], phase)
            self.moves += 1
            if phase > entry[1] and on_later is not None:
                on_later()
        for phase in touched:
            self._rebuild(phase)

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
            phase = step % PHASES
            if phase == 0 and self._moves:
                self._apply_moves()
            self.phase_times[phase] = time.monotonic()
            for member in self._phases[phase]:
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
