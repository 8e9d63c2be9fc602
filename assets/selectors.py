"""Reads of audio assets, scoped to one environment."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Environment
from assets.models import AudioAsset
from config.tenancy import parse_public_id, scoped_get


def asset_list(
    environment: Environment, *, status: str | None = None
) -> QuerySet[AudioAsset]:
    """The environment's assets (newest first once paginated)."""
    assets = AudioAsset.objects.select_related("environment").filter(
        environment=environment
    )
    if status:
        assets = assets.filter(status=status)
    return assets


def asset_get(environment: Environment, asset_id: object) -> AudioAsset:
    """The environment's asset with this id, or NotFound (also for other tenants')."""
    return scoped_get(
        AudioAsset.objects.select_related("environment"),
        environment,
        asset_id,
        what="asset",
    )


def asset_for_processing(asset_id: object) -> AudioAsset | None:
    """The asset a decoding task was queued for (None once deleted).

    Unscoped on purpose: tasks carry no tenant; the id came from our own queue.
    """
    parsed = parse_public_id(asset_id)
    if parsed is None:
        return None
    return (
        AudioAsset.objects.select_related("environment")
        .filter(public_id=parsed)
        .first()
    )


def environment_by_public_id(environment_id: object) -> Environment:
    """The environment a call runtime names by its public id."""
    return Environment.objects.get(public_id=str(environment_id))
