"""Carrier drivers: how a session's line reaches the peer network.

See ``base`` for the interface; ``simulator`` is the embedded default and the engine of test
environments. ``get_carrier(name)`` returns the process-wide driver instance.
"""

from __future__ import annotations

from functools import cache

from calls.carriers.base import Carrier


@cache
def get_carrier(name: str) -> Carrier:
    if name == "simulator":
        from calls.carriers.simulator import SimulatorCarrier

        return SimulatorCarrier()
    raise LookupError(f"Unknown carrier driver {name!r}")
