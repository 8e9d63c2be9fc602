"""The runtime boundary, with the real media clock: what the peer hears and says."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from audio import FRAME_SAMPLES, SAMPLE_RATE
from calls.carriers.simulator import ECHO_DELAY_FRAMES, talker_signal
from calls.carriers.simulator import helpers as simulator_helpers
from calls.models import Call, CallState
from calls.runtime import control
from calls.runtime.engine import Engine
from calls.runtime.runtime import CallRuntime
from calls.tests.conftest import wait_for
from config import home
from conftest import Tenant


def chirp(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    sweep = np.sin(2 * np.pi * (200 * t + (3000 - 200) / (2 * seconds) * t**2))
    return (0.5 * sweep).astype(np.float32)


class ArraySource:
    """Plays an array once, 20 ms per tick."""

    def __init__(self, samples: np.ndarray) -> None:
        self.samples = samples
        self.position = 0

    def read_into(self, out: np.ndarray) -> int:
        chunk = self.samples[self.position : self.position + len(out)]
        out[: len(chunk)] = chunk
        out[len(chunk) :] = 0
        self.position += len(chunk)
        return len(chunk)


class Recorder:
    def __init__(self) -> None:
        self.inbound: list[np.ndarray] = []
        self.outbound: list[np.ndarray] = []
        self.times: list[float] = []

    def on_media(self, inbound: np.ndarray, outbound: np.ndarray) -> None:
        self.inbound.append(inbound.copy())
        self.outbound.append(outbound.copy())
        self.times.append(time.monotonic())


def ready_session(tenant: Tenant) -> Any:
    from calls import services

    session = services.session_create(environment=tenant.test, display_name="rt")
    services.session_connect(session=session)
    return simulator_helpers.scan(session)


def active_runtime(engine: Engine, session: Any, to: str) -> tuple[Call, CallRuntime]:
    call = control.call_place(session=session, to=to, record=False).call
    wait_for(lambda: Call.objects.get(pk=call.pk).state == CallState.ACTIVE)
    runtime = engine.runtimes[str(call.public_id)]
    wait_for(lambda: runtime in engine.clock)
    return call, runtime


def on_home(fn: Any) -> Any:
    async def run() -> Any:
        return fn()

    return home.run_sync(run())


@pytest.mark.usefixtures("fast_network")
def test_echo_peer_returns_exactly_the_samples_it_heard_100_ms_later(
    engine: Engine, tenant: Tenant
) -> None:
    session = ready_session(tenant)
    call, runtime = active_runtime(engine, session, "15550000001@s.whatsapp.net")
    signal = chirp(1.0)
    recorder = Recorder()
    source = ArraySource(signal)

    def attach() -> None:
        runtime.subscribers.append(recorder)
        runtime.sources.append(source)

    on_home(attach)
    started = time.monotonic()
    wait_for(
        lambda: len(recorder.inbound) >= len(signal) // FRAME_SAMPLES + 10, timeout=5
    )
    elapsed = time.monotonic() - started
    control.call_end(call)

    outbound = np.concatenate(recorder.outbound)
    inbound = np.concatenate(recorder.inbound)
    # Recorder and source were attached between two ticks: frame 0 is the signal's start.
    sent_at = 0
    # What the peer heard is the signal, whole and in order...
    np.testing.assert_array_equal(outbound[sent_at : sent_at + len(signal)], signal)
    # ...and what it said back is the same samples, exactly 5 frames (100 ms) later.
    delay = ECHO_DELAY_FRAMES * FRAME_SAMPLES
    np.testing.assert_array_equal(
        inbound[sent_at + delay : sent_at + delay + len(signal)], signal
    )
    assert not inbound[: sent_at + delay].any()
    # The media clock runs at real time: 50 frames a second of wall clock.
    frames_per_second = (len(recorder.times) - 1) / (
        recorder.times[-1] - recorder.times[0]
    )
    assert 45 <= frames_per_second <= 55, frames_per_second
    assert elapsed >= 1.0


@pytest.mark.usefixtures("fast_network")
def test_talker_peer_speaks_its_recognisable_signal(
    engine: Engine, tenant: Tenant
) -> None:
    session = ready_session(tenant)
    call, runtime = active_runtime(engine, session, "15550000002@s.whatsapp.net")
    recorder = Recorder()
    on_home(lambda: runtime.subscribers.append(recorder))
    wait_for(lambda: len(recorder.inbound) >= 60)
    control.call_end(call)
    heard = np.concatenate(recorder.inbound[:60])
    start = int(
        np.argmin(
            [
                np.abs(talker_signal(k, 320) - heard[:320]).max()
                for k in range(0, SAMPLE_RATE, 320)
            ]
        )
    )
    expected = talker_signal(start * 320, len(heard))
    np.testing.assert_array_equal(heard, expected)
    spectrum = np.abs(np.fft.rfft(heard[: SAMPLE_RATE // 2 * 2][:16000]))
    peaks = sorted(np.argsort(spectrum)[-2:] * SAMPLE_RATE / 16000)
    assert peaks == [440.0, 1320.0]


@pytest.mark.usefixtures("fast_network")
def test_muted_call_sends_silence_but_still_consumes_its_audio(
    engine: Engine, tenant: Tenant
) -> None:
    session = ready_session(tenant)
    call, runtime = active_runtime(engine, session, "15550000001@s.whatsapp.net")
    control.call_mute(call, muted=True)
    recorder = Recorder()
    source = ArraySource(chirp(0.5))

    def attach() -> None:
        runtime.subscribers.append(recorder)
        runtime.sources.append(source)

    on_home(attach)
    wait_for(lambda: len(recorder.outbound) >= 40)
    control.call_end(call)
    assert not np.concatenate(recorder.outbound).any()
    assert not np.concatenate(recorder.inbound).any()
    assert source.position == len(source.samples)


@pytest.mark.usefixtures("fast_network")
def test_an_ended_call_leaves_the_clock_and_the_engine(
    engine: Engine, tenant: Tenant
) -> None:
    session = ready_session(tenant)
    call, runtime = active_runtime(engine, session, "15550000001@s.whatsapp.net")
    assert runtime in engine.clock
    snapshot = control.call_end(call)
    assert snapshot["state"] == "ended" and snapshot["endReason"] == "completed"
    assert str(call.public_id) not in engine.runtimes
    assert runtime not in engine.clock


def test_dtmf_sent_while_the_answer_is_being_written_waits_for_it(
    tenant: Tenant, engine: Engine
) -> None:
    """The answer reaches the database before the runtime's own state: a client that
    already read the call as active and sends DTMF at once is not told it is ringing."""
    import asyncio

    from config.errors import Conflict

    session = ready_session(tenant)
    call = control.call_place(
        session=session, to="15550000004@s.whatsapp.net", record=False
    ).call  # this peer never answers on its own
    wait_for(lambda: Call.objects.get(pk=call.pk).state == CallState.RINGING)
    runtime = engine.runtimes[str(call.public_id)]
    wait_for(lambda: runtime.state == CallState.RINGING)

    async def answer_and_send() -> tuple[bool, str, str]:
        runtime.leg_answered()  # as the carrier reports it
        await asyncio.sleep(0)  # the answer holds the call and waits on the database
        in_flight = runtime._lock.locked()
        try:
            await runtime.send_dtmf("1")
        except Conflict as exc:
            return in_flight, str(exc.code), runtime.state
        return in_flight, "sent", runtime.state

    in_flight, outcome, state = home.run_sync(answer_and_send())
    control.call_end(Call.objects.get(pk=call.pk))
    assert in_flight
    # Not "call_not_active": the simulator has no DTMF, which is the next check.
    assert outcome == "not_supported_by_carrier"
    assert state == CallState.ACTIVE
