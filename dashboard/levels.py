"""Input and output levels of a live call, for the dashboard's call view.

A meter is a media subscriber attached to the call's runtime only while someone looks:
the first ``levels`` command attaches it, each later one reads and resets what it summed
since, and a meter nobody has read for ``IDLE_S`` detaches itself. Calls nobody watches
pay nothing; a watched call pays two dot products per 20 ms tick.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from audio import Frame

if TYPE_CHECKING:
    from calls.runtime.runtime import CallRuntime

KIND = "level-meter"
IDLE_S = 5.0
FLOOR_DB = -90.0


def _dbfs(sum_of_squares: float, samples: int) -> float:
    if samples == 0 or sum_of_squares <= 0.0:
        return FLOOR_DB
    return max(FLOOR_DB, round(10 * math.log10(sum_of_squares / samples), 1))


class LevelMeter:
    """Sums the energy of what the peer sends (input) and hears (output)."""

    def __init__(self, runtime: CallRuntime) -> None:
        self.runtime = runtime
        self.read_at = time.monotonic()
        self._reset()

    def _reset(self) -> None:
        self.input_energy = 0.0
        self.output_energy = 0.0
        self.samples = 0

    def on_media(self, inbound: Frame, outbound: Frame) -> None:
        if time.monotonic() - self.read_at > IDLE_S:
            self.runtime.detach_client(self)
            return
        self.input_energy += float(np.dot(inbound, inbound))
        self.output_energy += float(np.dot(outbound, outbound))
        self.samples += len(inbound)

    def read(self) -> dict[str, float]:
        levels = {
            "inputDbfs": _dbfs(self.input_energy, self.samples),
            "outputDbfs": _dbfs(self.output_energy, self.samples),
        }
        self._reset()
        self.read_at = time.monotonic()
        return levels


async def levels(runtime: CallRuntime, args: dict[str, Any]) -> dict[str, Any]:
    """The ``levels`` engine command: the call's levels since the last read (in dBFS,
    ``-90`` for silence), and which clients are attached now."""
    meters = runtime.clients.get(KIND) or []
    if meters:
        meter = meters[0]
        read = meter.read()
    else:
        meter = LevelMeter(runtime)
        runtime.attach_client(KIND, meter, subscriber=True)
        read = {"inputDbfs": FLOOR_DB, "outputDbfs": FLOOR_DB}
    return {
        **read,
        "socket": bool(runtime.clients.get("websocket")),
        "streams": len(runtime.clients.get("stream") or ()),
    }


def register() -> None:
    from calls.runtime.engine import register_command

    register_command("levels", levels)
