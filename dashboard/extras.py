"""Reads and actions of the apps that may not be installed (assets, recordings, streams).

Each goes through its app's own scoped selectors and services; when the app is missing the
page simply leaves that part out.
"""

from __future__ import annotations

from typing import Any

from accounts.models import Environment
from calls.models import Call, CallState
from calls.runtime import control
from config.api.errors import Conflict
from dashboard import features


def ready_assets(environment: Environment) -> list[Any]:
    if not features.assets():
        return []
    from assets import selectors

    return list(selectors.asset_list(environment, status="ready")[:100])


def asset_play(
    environment: Environment, call: Call, *, asset_id: str, mode: str
) -> dict[str, Any]:
    """Play an environment's ready asset into its live call (as the API's play does)."""
    from assets import selectors
    from assets.models import AssetStatus

    asset = selectors.asset_get(environment, asset_id)
    if asset.status != AssetStatus.READY:
        raise Conflict(
            f"The asset is {asset.status}; only ready assets can be played.",
            code="asset_not_ready",
        )
    if call.state != CallState.ACTIVE:
        raise Conflict(
            f"The call is {call.state}; audio plays only into active calls.",
            code="call_not_active",
        )
    return control.call_command(call, "play", asset_id=str(asset.public_id), mode=mode)


def recordings_of(environment: Environment, call: Call) -> list[Any]:
    if not features.recordings():
        return []
    from recordings import selectors

    return list(selectors.recording_list(environment, call=call).order_by("pk"))


def streams_of(environment: Environment, call: Call) -> list[Any]:
    if not features.streams():
        return []
    from streams import selectors

    return list(selectors.stream_list(environment, call))
