"""What the call pages show of other apps: playable assets, recordings, dial-out streams.

Each read goes through its app's own scoped selectors.
"""

from __future__ import annotations

from typing import Any

from accounts.models import Environment
from assets import selectors as asset_selectors
from calls.models import Call
from recordings import selectors as recording_selectors
from streams import selectors as stream_selectors


def ready_assets(environment: Environment) -> list[Any]:
    return list(asset_selectors.asset_list(environment, status="ready")[:100])


def recordings_of(environment: Environment, call: Call) -> list[Any]:
    return list(
        recording_selectors.recording_list(environment, call=call).order_by("pk")
    )


def streams_of(environment: Environment, call: Call) -> list[Any]:
    return list(stream_selectors.stream_list(environment, call))
