from __future__ import annotations

from celery import shared_task

from assets import services


# Decoding runs well over 100x real time, so the 30-minute maximum takes seconds; the
# limits only stop a decoder that hangs. A redelivered task (worker lost) finds the
# asset no longer processing, or decodes it again: safe either way.
@shared_task(name="assets.decode", soft_time_limit=120, time_limit=150, acks_late=True)
def asset_decode(asset_id: str) -> str | None:
    """Decode an uploaded asset to 16 kHz mono; it ends ready or failed."""
    asset = services.asset_process(asset_id=asset_id)
    return None if asset is None else asset.status


@shared_task(name="assets.sweep_stuck", soft_time_limit=600, time_limit=660)
def sweep_stuck_assets() -> dict[str, int]:
    """Queue again the decoding of assets whose worker died; fail the hopeless ones."""
    return services.assets_sweep_stuck()
