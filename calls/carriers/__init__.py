"""Carrier drivers: how a session's line reaches a peer network (DESIGN §1, §11).

``base`` is the interface. ``settings.CARRIERS`` names every driver (name → dotted path
of its ``Carrier`` class) and ``settings.SWITCHBOARD_CARRIERS`` enables some of them for
live environments; test environments always use the simulator. Adding a carrier is adding
a package here and a line to ``CARRIERS``: see ``README.md`` beside this file. A driver
hands calls its network delivers to ``calls.runtime.inbound.offer_incoming``.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.module_loading import import_string

from calls.carriers.base import Carrier

if TYPE_CHECKING:
    from accounts.models import Environment

TEST_CARRIER = "simulator"


@cache
def _load(name: str, path: str) -> Carrier:
    driver = import_string(path)()
    if not isinstance(driver, Carrier):
        raise TypeError(f"{path} is not a Carrier")
    return driver


def get_carrier(name: str) -> Carrier:
    """The process-wide driver of that name (LookupError if no such driver exists)."""
    path = settings.CARRIERS.get(name)
    if path is None:
        raise LookupError(f"Unknown carrier driver {name!r}")
    return _load(name, path)


def enabled_carriers() -> list[Carrier]:
    """The drivers this deployment runs: the simulator and the live ones enabled."""
    names = dict.fromkeys([TEST_CARRIER, *settings.SWITCHBOARD_CARRIERS])
    return [get_carrier(name) for name in names if name in settings.CARRIERS]


def carriers_for(environment: Environment) -> list[str]:
    """The carriers a session of this environment may name; the first is the default."""
    if environment.is_test:
        return [TEST_CARRIER]
    return [name for name in settings.SWITCHBOARD_CARRIERS if name in settings.CARRIERS]


__all__ = [
    "Carrier",
    "carriers_for",
    "enabled_carriers",
    "get_carrier",
]
