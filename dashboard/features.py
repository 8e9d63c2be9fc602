"""Parts of the dashboard that appear once the app behind them is installed."""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

from django.apps import apps


def _has(app_label: str, module: str, name: str | None = None) -> bool:
    if not apps.is_installed(app_label) or find_spec(module) is None:
        return False
    return name is None or hasattr(import_module(module), name)


def assets() -> bool:
    return _has("assets", "assets.selectors")


def recordings() -> bool:
    return _has("recordings", "recordings.selectors")


def streams() -> bool:
    return _has("streams", "streams.selectors")


def webhooks() -> bool:
    return _has("events", "events.selectors", "webhook_list")
