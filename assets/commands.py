"""The engine commands ``play`` and ``stop_playback``, run where the call's runtime lives.

The playback services (``assets.services.playback_start``, ``playback_stop``) reach them
through ``calls.runtime.control.run_command``; they run on
the home loop of the process hosting the call. Loading audio and writing events happen
in worker threads, never on the media clock's path.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
from channels.db import database_sync_to_async
from django.core.files.storage import default_storage
from django.db import transaction

from assets import selectors, services
from assets.models import AssetStatus
from assets.playback import Pcm16, Playback, PlaybackQueue
from audio import SAMPLE_RATE
from calls.models import CallState
from config.errors import Conflict, InvalidRequest, NotFound
from config.ids import uuid7_str
from config.times import iso_ms
from events.models import EventType
from events.services import event_emit

if TYPE_CHECKING:
    from calls.runtime.runtime import CallRuntime

MODES = ("queue", "interrupt")

# Decoded audio shared by every call playing the same asset in this process; an entry
# lives as long as some playback holds its array.
_loaded: weakref.WeakValueDictionary[str, np.ndarray] = weakref.WeakValueDictionary()
_loaded_lock = threading.Lock()


def register() -> None:
    from calls.runtime import hooks
    from calls.runtime.engine import register_command

    register_command("play", play)
    register_command("stop_playback", stop_playback)
    hooks.register(on_reaped=_reaped)


def _reaped(call_pk: int) -> None:
    services.playbacks_reaped(call_pk=call_pk)


def playback_data(playback: Playback) -> dict[str, Any]:
    """The playback object of the API: ``{playbackId, assetId, state, startedAt}``."""
    return {
        "playbackId": playback.playback_id,
        "assetId": playback.asset_id,
        "state": playback.state,
        "startedAt": iso_ms(playback.started_at),
    }


def _read_normalised(audio_name: str) -> Pcm16:
    with default_storage.open(audio_name, "rb") as file:
        samples, rate = sf.read(file, dtype="int16", always_2d=False)
    if rate != SAMPLE_RATE or samples.ndim != 1:
        raise ValueError(f"{audio_name} is not 16 kHz mono")
    return samples


def load_playable(environment_id: str, asset_id: str) -> tuple[str, Pcm16]:
    """Return an asset's public id and its normalised samples, if it may be played."""
    environment = selectors.environment_by_public_id(environment_id)
    asset = selectors.asset_get(environment, asset_id)
    if asset.status != AssetStatus.READY:
        raise Conflict(
            f"The asset is {asset.status}; only ready assets can be played.",
            code="asset_not_ready",
        )
    with _loaded_lock:
        samples = _loaded.get(asset.audio_name)
    if samples is None:
        try:
            samples = _read_normalised(asset.audio_name)
        except FileNotFoundError:
            # Deleted between the lookup and the read.
            raise NotFound(
                f"No asset with id {asset_id:.64} exists.", code="asset_not_found"
            ) from None
        samples.flags.writeable = False
        with _loaded_lock:
            samples = _loaded.setdefault(asset.audio_name, samples)
    return str(asset.public_id), samples


def _emit(environment_id: str, session_id: str, type: str, data: dict) -> None:
    with transaction.atomic():
        event_emit(
            environment=selectors.environment_by_public_id(environment_id),
            type=type,
            data=data,
            session_public_id=session_id,
        )


emit_event = database_sync_to_async(_emit, thread_sensitive=False)


class CallPlayback(PlaybackQueue):
    """A runtime's playback queue, reporting its events in order, off the clock path."""

    def __init__(self, runtime: CallRuntime) -> None:
        super().__init__(on_started=self._started, on_finished=self._finished)
        self.runtime = runtime
        self._last_event: asyncio.Task[Any] | None = None

    def _started(self, playback: Playback) -> None:
        self._report(EventType.CALL_PLAYBACK_STARTED, self._event_data(playback))

    def _finished(self, playback: Playback) -> None:
        data = {
            **self._event_data(playback),
            "reason": playback.state,
            "playedMs": playback.played_ms,
            "finishedAt": iso_ms(playback.finished_at),
        }
        self._report(EventType.CALL_PLAYBACK_FINISHED, data)

    def _event_data(self, playback: Playback) -> dict[str, Any]:
        return {
            "callId": self.runtime.call_id,
            "playbackId": playback.playback_id,
            "assetId": playback.asset_id,
            "startedAt": iso_ms(playback.started_at) if playback.announced else None,
        }

    def _report(self, type: str, data: dict[str, Any]) -> None:
        # Each event waits for the previous one: started always precedes finished.
        previous = self._last_event
        self._last_event = self.runtime.engine.spawn(self._write(previous, type, data))

    async def _write(
        self, previous: asyncio.Task[Any] | None, type: str, data: dict[str, Any]
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await emit_event(
            self.runtime.environment_id, self.runtime.session_id, type, data
        )


def _playback_of(runtime: CallRuntime) -> CallPlayback | None:
    for client in runtime.clients_of("playback"):
        if isinstance(client, CallPlayback):
            return client
    return None


def _require_active(runtime: CallRuntime) -> None:
    if runtime.state != CallState.ACTIVE:
        raise Conflict(
            f"The call is {runtime.state}; audio plays only into active calls.",
            code="call_not_active",
        )


async def play(runtime: CallRuntime, args: dict[str, Any]) -> dict[str, Any]:
    """Play a ready asset into the call: queued after others, or interrupting them."""
    _require_active(runtime)
    mode = args.get("mode") or "queue"
    if mode not in MODES:
        raise InvalidRequest(f"mode must be one of {', '.join(MODES)}.", param="mode")
    asset_id, samples = await database_sync_to_async(
        load_playable, thread_sensitive=False
    )(runtime.environment_id, str(args["asset_id"]))
    # The call may have ended while the audio loaded.
    _require_active(runtime)
    queue = _playback_of(runtime)
    if queue is None:
        queue = CallPlayback(runtime)
        runtime.attach_client("playback", queue, source=True, observer=True)
    playback = Playback(playback_id=uuid7_str(), asset_id=asset_id, samples=samples)
    queue.add(playback, interrupt=mode == "interrupt")
    return playback_data(playback)


async def stop_playback(runtime: CallRuntime, args: dict[str, Any]) -> dict[str, Any]:
    """Stop the call's current playback and drop the queued ones."""
    _require_active(runtime)
    queue = _playback_of(runtime)
    stopped = queue.stop() if queue is not None else []
    return {"stopped": [playback_data(playback) for playback in stopped]}
