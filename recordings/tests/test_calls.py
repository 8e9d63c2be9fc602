"""Recordings of real calls: the runtime's recorder, the finalisation, the reaper."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from audio import FRAME_SAMPLES
from audio.codecs import float_to_pcm16
from calls import hosts
from calls.carriers.simulator import ECHO_DELAY_FRAMES, talker_signal
from calls.models import Call, CallState
from calls.runtime import control
from calls.runtime.engine import Engine
from calls.tests.conftest import wait_for
from calls.tests.media_client import MediaClient, chirp, find
from calls.tests.test_media_socket import media_url, place
from config import home
from conftest import LiveServer, Tenant
from events.models import Event
from recordings import spool
from recordings.models import Recording
from recordings.recorder import wait_for_spool_writes
from recordings.tests.conftest import ready_session, stored_wav, wait_for_recordings

pytestmark = pytest.mark.usefixtures("fast_network")

ECHO = "15550000001@s.whatsapp.net"
TALKER = "15550000002@s.whatsapp.net"
ECHO_DELAY = ECHO_DELAY_FRAMES * FRAME_SAMPLES  # 1600 samples, 100 ms


def on_home(fn: Any) -> Any:
    async def run() -> Any:
        return fn()

    return home.run_sync(run())


def test_echo_call_records_what_the_peer_heard_and_its_echo_100_ms_later(
    engine: Engine, tenant: Tenant, asgi_server: LiveServer
) -> None:
    api = tenant.client()
    session_id, call_id = place(api, ECHO)
    runtime = engine.runtimes[call_id]
    # Loud enough that signal and echo overlap above full scale: the mix must clip.
    signal = chirp(1.0, amplitude=0.8)

    async def talk() -> None:
        url = media_url(asgi_server, session_id, call_id)
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.messages)
            await client.stream(signal)
            await client.wait_for(lambda: find(client.received(), signal) >= 0)

    asyncio.run(talk())
    ended = api.post(f"/api/v1/sessions/{session_id}/calls/{call_id}/end")
    assert ended.status_code == 200
    media_ms = runtime.media_ms
    call = Call.objects.get(public_id=call_id)
    recordings = wait_for_recordings(call)
    assert sorted(recordings) == ["inbound", "mixed", "outbound"]

    outbound, out_info = stored_wav(recordings["outbound"])
    inbound, in_info = stored_wav(recordings["inbound"])
    mixed, mix_info = stored_wav(recordings["mixed"])
    for info in (out_info, in_info, mix_info):
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    # One frame per tick in each file, silence included: all as long as the media.
    samples = runtime.media_frames * FRAME_SAMPLES
    assert len(outbound) == len(inbound) == len(mixed) == samples
    for recording in recordings.values():
        assert abs(recording.duration_ms - media_ms) <= 40
        assert recording.size_bytes == 44 + 2 * samples

    # What the peer heard is the signal, and nothing else...
    sent = float_to_pcm16(signal)
    start = find(outbound, sent)
    assert start >= 0
    assert not outbound[:start].any() and not outbound[start + len(sent) :].any()
    # ...and what it said back is the same samples exactly 1600 samples later.
    np.testing.assert_array_equal(
        inbound[start + ECHO_DELAY : start + ECHO_DELAY + len(sent)], sent
    )
    assert not inbound[: start + ECHO_DELAY].any()
    # The mix is the two 16-bit tracks summed, clipped to full scale: within one
    # step of rounding the float mix.
    heard = np.zeros(samples, dtype=np.float32)
    heard[start : start + len(signal)] = signal
    said = np.zeros(samples, dtype=np.float32)
    said[start + ECHO_DELAY : start + ECHO_DELAY + len(signal)] = signal
    assert (np.abs(heard + said) > 1).any()
    summed = inbound.astype(np.int32) + outbound
    np.testing.assert_array_equal(mixed, np.clip(summed, -32767, 32767))
    float_mix = float_to_pcm16(heard + said).astype(np.int32)
    assert np.abs(mixed - float_mix).max() <= 1
    assert mixed.max() == 32767 and mixed.min() == -32767

    # The call's snapshot lists them; one metadata-only event per artifact.
    snapshot = api.get(f"/api/v1/sessions/{session_id}/calls/{call_id}").json()["data"]
    assert {r["kind"]: r["durationMs"] for r in snapshot["recordings"]} == {
        kind: recording.duration_ms for kind, recording in recordings.items()
    }
    events = Event.objects.filter(type="call.recording.ready")
    assert sorted(e.data["kind"] for e in events) == ["inbound", "mixed", "outbound"]
    for event in events:
        assert set(event.data) == {
            "callId",
            "recordingId",
            "kind",
            "contentType",
            "durationMs",
            "sizeBytes",
            "expiresAt",
        }
        assert event.data["callId"] == call_id
        assert str(event.session_public_id) == session_id
    # Finalised: nothing is left in the spool.
    wait_for(lambda: not spool.call_dir(call_id).exists())


def test_talker_call_without_a_socket_records_the_talker_and_silence(
    engine: Engine, tenant: Tenant
) -> None:
    api = tenant.client()
    session_id, call_id = place(api, TALKER)
    runtime = engine.runtimes[call_id]
    wait_for(lambda: runtime.media_frames >= 60)
    api.post(f"/api/v1/sessions/{session_id}/calls/{call_id}/end")
    recordings = wait_for_recordings(Call.objects.get(public_id=call_id))

    inbound, _ = stored_wav(recordings["inbound"])
    outbound, _ = stored_wav(recordings["outbound"])
    mixed, _ = stored_wav(recordings["mixed"])
    samples = runtime.media_frames * FRAME_SAMPLES
    assert len(inbound) == len(outbound) == samples
    # The talker speaks from the call's first frame on: the recording starts with it.
    expected = float_to_pcm16(talker_signal(0, samples))
    np.testing.assert_array_equal(inbound, expected)
    np.testing.assert_array_equal(mixed, expected)
    assert not outbound.any()


def test_a_call_placed_with_record_false_leaves_no_recordings(
    engine: Engine, tenant: Tenant
) -> None:
    api = tenant.client()
    session_id = api.post(
        "/api/v1/sessions", {"displayName": "n"}, format="json"
    ).json()["data"]["sessionId"]
    api.post(f"/api/v1/sessions/{session_id}/connect")
    api.post(f"/api/v1/test-helpers/sessions/{session_id}/scan")
    created = api.post(
        f"/api/v1/sessions/{session_id}/calls",
        {"to": TALKER, "record": False},
        format="json",
    ).json()["data"]
    assert created["record"] is False
    _assert_not_recorded(engine, api, session_id, created["callId"])


def test_an_environment_with_record_calls_off_records_nothing(
    engine: Engine, tenant: Tenant
) -> None:
    api = tenant.client()
    patched = api.patch("/api/v1/environment", {"recordCalls": False}, format="json")
    assert patched.status_code == 200 and patched.json()["data"]["recordCalls"] is False
    session_id, call_id = place(api, TALKER)
    assert Call.objects.get(public_id=call_id).record is False
    _assert_not_recorded(engine, api, session_id, call_id)


def _assert_not_recorded(
    engine: Engine, api: Any, session_id: str, call_id: str
) -> None:
    wait_for(lambda: Call.objects.get(public_id=call_id).state == CallState.ACTIVE)
    runtime = engine.runtimes[call_id]
    wait_for(lambda: runtime.media_frames >= 25)
    assert not spool.call_dir(call_id).exists()
    path = f"/api/v1/sessions/{session_id}/calls/{call_id}"
    assert api.post(path + "/end").status_code == 200
    # The end hook would have queued (and, tasks in-process, run) any finalisation.
    wait_for(lambda: runtime.ended.is_set())
    call = Call.objects.get(public_id=call_id)
    assert not Recording.objects.filter(call=call).exists()
    assert api.get(path).json()["data"]["recordings"] == []
    listed = api.get(f"/api/v1/recordings?callId={call_id}")
    assert listed.status_code == 200 and listed.json()["data"] == []


def test_a_call_whose_process_died_is_finalised_by_the_reaper_from_its_spool(
    engine: Engine, tenant: Tenant
) -> None:
    """The process dies mid-call; the reaper stores what its spool holds.

    Simulated in this process (tests/test_processes.py kills a real server): the
    runtime stops ticking and nothing closes its WAV, as after SIGKILL, and the call's
    host is made a process that no longer beats.
    """
    call = control.call_place(
        session=ready_session(tenant.test), to=TALKER, record=None
    ).call
    wait_for(lambda: Call.objects.get(pk=call.pk).state == CallState.ACTIVE)
    runtime = engine.runtimes[str(call.public_id)]
    audio = spool.audio_path(spool.call_dir(str(call.public_id)))
    # The process's seconds are shared by all its calls: the first one written holds
    # this call's frames from its first to the end of that second.
    wait_for(lambda: audio.exists() and audio.stat().st_size > 44)
    on_home(lambda: engine.clock.remove(runtime))
    # The second it stopped in is handed to the writer like any other.
    ticks = engine.clock.ticks
    wait_for(lambda: engine.clock.ticks > ticks + 50)
    wait_for_spool_writes()
    flushed = (audio.stat().st_size - 44) // 4  # 2 channels of 16 bits
    assert 0 < flushed <= 2 * 16000 and flushed % 320 == 0
    Call.objects.filter(pk=call.pk).update(host="a-process-that-died")

    assert hosts.reap_orphaned_calls(alive_host=engine.host_id) == 1

    call.refresh_from_db()
    assert (call.state, call.end_reason) == ("ended", "failed")
    recordings = {r.kind: r for r in Recording.objects.filter(call=call)}
    assert sorted(recordings) == ["inbound", "mixed", "outbound"]
    for recording in recordings.values():
        samples, info = stored_wav(recording)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert len(samples) == flushed and recording.duration_ms == flushed // 16
    inbound, _ = stored_wav(recordings["inbound"])
    np.testing.assert_array_equal(inbound, float_to_pcm16(talker_signal(0, flushed)))
