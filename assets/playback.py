"""Playback of decoded assets into a call: an outbound source read by the media clock.

Nothing here imports Django. A call has at most one ``PlaybackQueue`` among its
runtime's sources; each tick the clock asks it for 20 ms, which it slices out of the
current asset's preloaded 16-bit samples (one numpy multiply into the frame, no
per-sample Python). Playbacks follow each other gaplessly: the tick that finishes one
continues with the next. Events are reported through callbacks, which must not block:
they run on the media clock's path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

Pcm16 = npt.NDArray[np.int16]
Frame = npt.NDArray[np.float32]

# int16 → float32 exactly as audio.codecs.pcm16_to_float does it.
_SCALE = 1 / 32768

QUEUED = "queued"
PLAYING = "playing"
# Terminal states, which are also the `reason` of call.playback.finished.
COMPLETED = "completed"
STOPPED = "stopped"
CALL_ENDED = "call_ended"


@dataclass(eq=False)
class Playback:
    """One asset queued or playing in one call."""

    playback_id: str
    asset_id: str
    samples: Pcm16
    state: str = QUEUED
    position: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    announced: bool = field(default=False, repr=False)

    @property
    def played_ms(self) -> int:
        return self.position // 16

    @property
    def duration_ms(self) -> int:
        return len(self.samples) // 16


Listener = Callable[[Playback], None]


def _now() -> datetime:
    return datetime.now(UTC)


class PlaybackQueue:
    """A call's playback: the current asset first, then the queued ones, in order."""

    def __init__(self, on_started: Listener, on_finished: Listener) -> None:
        self._items: deque[Playback] = deque()
        self._on_started = on_started
        self._on_finished = on_finished

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> tuple[Playback, ...]:
        return tuple(self._items)

    def add(self, playback: Playback, *, interrupt: bool = False) -> list[Playback]:
        """Queue a playback (first, after stopping everything, if ``interrupt``).

        Returns the playbacks the interruption stopped.
        """
        stopped = self.stop() if interrupt else []
        self._items.append(playback)
        if len(self._items) == 1:
            self._begin(playback)
        return stopped

    def stop(self) -> list[Playback]:
        """Stop the current playback and drop the queued ones."""
        return self._finish_all(STOPPED)

    # CallObserver: the runtime tells its observers when the call ends.
    def on_call_update(self, snapshot: dict[str, Any]) -> None:
        pass

    def on_call_ended(self, snapshot: dict[str, Any]) -> None:
        self._finish_all(CALL_ENDED)

    # OutboundSource: called by the media clock every 20 ms.
    def read_into(self, out: Frame) -> int:
        """Fill ``out`` with the next samples (zeros after the last); return how many."""
        wanted = len(out)
        filled = 0
        items = self._items
        while items and filled < wanted:
            current = items[0]
            position = current.position
            take = min(wanted - filled, len(current.samples) - position)
            if take > 0:
                if not current.announced:
                    current.announced = True
                    self._on_started(current)
                np.multiply(
                    current.samples[position : position + take],
                    _SCALE,
                    out=out[filled : filled + take],
                    dtype=np.float32,
                )
                filled += take
                current.position = position + take
            if current.position >= len(current.samples):
                items.popleft()
                self._end(current, COMPLETED)
                if items:
                    self._begin(items[0])
        if filled == 0:
            out.fill(0.0)
        elif filled < wanted:
            out[filled:] = 0.0
        return filled

    def _begin(self, playback: Playback) -> None:
        playback.state = PLAYING
        playback.started_at = _now()

    def _end(self, playback: Playback, reason: str) -> None:
        playback.state = reason
        playback.finished_at = _now()
        self._on_finished(playback)

    def _finish_all(self, reason: str) -> list[Playback]:
        finished = list(self._items)
        self._items.clear()
        for playback in finished:
            self._end(playback, reason)
        return finished
