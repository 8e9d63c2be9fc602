"""Fixtures for recordings: a spool per test, tasks in-process, calls with audio."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from accounts.models import Environment
from audio import FRAME_SAMPLES
from calls import services as call_services
from calls.carriers.simulator import helpers as simulator_helpers
from calls.models import Call, CallState, Direction, Session
from calls.runtime.engine import Engine
from calls.tests.conftest import engine as calls_engine
from calls.tests.conftest import fast_network, wait_for
from config import home
from recordings import spool
from recordings.models import Recording
from recordings.recorder import RecordingBank, wait_for_recorders

# The call engine's fixtures, for tests that place real calls.
__all__ = ["calls_engine", "fast_network"]


@pytest.fixture
def engine(calls_engine: Engine) -> Iterator[Engine]:
    """The process's engine; at the end, calls still live are dropped and their
    recordings finished before the database is emptied for the next test."""
    yield calls_engine

    async def drop_all() -> None:
        for runtime in list(calls_engine.runtimes.values()):
            runtime.drop()

    home.run_sync(drop_all())
    wait_for_recorders()


@pytest.fixture(autouse=True)
def spool_dir(settings: Any, tmp_path: Path) -> Path:
    settings.RECORDING_SPOOL_DIR = tmp_path / "spool"
    return Path(settings.RECORDING_SPOOL_DIR)


@pytest.fixture(autouse=True)
def eager_tasks() -> Iterator[None]:
    """Run tasks in the calling process (as embedded), unless a test starts a worker.

    With REDIS_URL set, Celery is not eager; tests that are not about Celery force it.
    """
    from config.celery_app import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def ready_session(environment: Environment) -> Session:
    session = call_services.session_create(environment=environment, display_name="r")
    call_services.session_connect(session=session)
    return simulator_helpers.scan(session)


def ended_call(environment: Environment, *, record: bool = True) -> Call:
    """A call that was answered and has ended (no runtime: hosted by a gone process)."""
    call = call_services.call_create(
        session=ready_session(environment),
        peer_address="15550000001@s.whatsapp.net",
        direction=Direction.OUTGOING,
        host="gone",
        record=record,
    )
    for state in (CallState.RINGING, CallState.ACTIVE, CallState.ENDED):
        call_services.call_transition(call_id=call.pk, to=state)
    call.refresh_from_db()
    return call


def spool_audio(call: Call, inbound: np.ndarray, outbound: np.ndarray) -> Path:
    """Record frames into the call's spool as its runtime would, and close the file."""
    bank = RecordingBank()
    recorder = bank.open(spool.call_dir(str(call.public_id)))
    for start in range(0, len(inbound), FRAME_SAMPLES):
        recorder.on_media(
            inbound[start : start + FRAME_SAMPLES],
            outbound[start : start + FRAME_SAMPLES],
        )
        bank.frame_done()
    recorder.close().result()
    return recorder.directory


def tone(seconds: float, hz: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def recorded_call(environment: Environment, seconds: float = 1.0) -> Call:
    """An ended call whose recordings are finalised (1 s of tone each way by default)."""
    from recordings import services

    call = ended_call(environment)
    spool_audio(call, tone(seconds), tone(seconds, hz=1000))
    services.recordings_finalise(call_id=str(call.public_id))
    return call


def stored_wav(recording: Recording) -> tuple[np.ndarray, Any]:
    """The stored file's int16 samples and its soundfile header info."""
    from django.core.files.storage import default_storage

    with default_storage.open(recording.file_name, "rb") as stored:
        data = stored.read()
    info = soundfile.info(io.BytesIO(data))
    samples, _ = soundfile.read(io.BytesIO(data), dtype="int16")
    return samples, info


def wait_for_recordings(call: Call, count: int = 3, timeout: float = 10) -> dict:
    """Wait until the call has its recordings; return them by kind."""
    wait_for(lambda: Recording.objects.filter(call=call).count() >= count, timeout)
    return {r.kind: r for r in Recording.objects.filter(call=call)}
