"""Playing assets into live calls to the simulated echo peer, through the REST API.

A subscriber on the call's runtime captures, frame by frame, what the peer hears
(outbound) and what it sends back (inbound): the checks are on those samples.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from assets.models import AudioAsset
from assets.tests.conftest import ASSETS, FIXTURES, upload
from audio import FRAME_SAMPLES, SAMPLE_RATE
from audio.codecs import pcm16_to_float
from calls.carriers.simulator import ECHO_DELAY_FRAMES
from calls.models import Call, CallState
from calls.runtime.engine import Engine
from calls.runtime.runtime import CallRuntime
from calls.tests.conftest import wait_for
from config import home
from conftest import Tenant, is_problem
from events.models import Event

pytestmark = pytest.mark.usefixtures("engine", "fast_network", "decode_in_process")

API = "/api/v1"
ECHO = "15550000001@s.whatsapp.net"
PLAYBACK_FIELDS = {"playbackId", "assetId", "state", "startedAt"}


class Recorder:
    """A MediaSubscriber keeping a copy of every frame."""

    def __init__(self) -> None:
        self.inbound: list[np.ndarray] = []
        self.outbound: list[np.ndarray] = []

    def on_media(self, inbound: np.ndarray, outbound: np.ndarray) -> None:
        self.inbound.append(inbound.copy())
        self.outbound.append(outbound.copy())

    def heard(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.outbound), np.concatenate(self.inbound)

    @property
    def frames(self) -> int:
        return len(self.outbound)


class ConstantSource:
    """Live audio stand-in: the same small value every sample."""

    def __init__(self, value: float) -> None:
        self.value = np.float32(value)

    def read_into(self, out: np.ndarray) -> int:
        out.fill(self.value)
        return len(out)


def on_home(fn: Any) -> Any:
    async def run() -> Any:
        return fn()

    return home.run_sync(run())


def tone(freq: float, seconds: float) -> bytes:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    buffer = io.BytesIO()
    sf.write(
        buffer, 0.4 * np.sin(2 * np.pi * freq * t), SAMPLE_RATE, "PCM_16", format="WAV"
    )
    return buffer.getvalue()


def upload_tone(client: APIClient, freq: float, seconds: float) -> str:
    audio = SimpleUploadedFile(f"{freq}.wav", tone(freq, seconds))
    response = client.post(ASSETS, {"audio": audio}, format="multipart")
    assert response.status_code == 201, response.content
    asset = response.json()["data"]
    assert asset["status"] == "ready"
    return asset["id"]


def normalised(asset_id: str) -> np.ndarray:
    """The asset's normalised samples as the runtime plays them (float32)."""
    asset = AudioAsset.objects.get(public_id=asset_id)
    with default_storage.open(asset.audio_name, "rb") as file:
        samples, rate = sf.read(file, dtype="int16")
    assert rate == SAMPLE_RATE
    return pcm16_to_float(samples)


def ready_session(client: APIClient) -> str:
    session_id = client.post(f"{API}/sessions", {"displayName": "Line"}, format="json")
    sid = session_id.json()["data"]["sessionId"]
    assert client.post(f"{API}/sessions/{sid}/connect").status_code == 200
    assert client.post(f"{API}/test-helpers/sessions/{sid}/scan").status_code == 200
    return sid


def active_call(
    engine: Engine, client: APIClient, session_id: str
) -> tuple[str, CallRuntime, Recorder]:
    """Place a call to the echo peer, wait until media flows, capture its frames."""
    response = client.post(
        f"{API}/sessions/{session_id}/calls", {"to": ECHO}, format="json"
    )
    assert response.status_code == 201, response.content
    call_id = response.json()["data"]["callId"]
    wait_for(lambda: Call.objects.get(public_id=call_id).state == CallState.ACTIVE)
    runtime = engine.runtimes[call_id]
    wait_for(lambda: runtime in engine.clock)
    recorder = Recorder()
    on_home(lambda: runtime.subscribers.append(recorder))
    return call_id, runtime, recorder


def call_url(session_id: str, call_id: str, tail: str) -> str:
    return f"{API}/sessions/{session_id}/calls/{call_id}{tail}"


def play(
    client: APIClient, session_id: str, call_id: str, asset_id: str, mode: str = "queue"
) -> dict:
    response = client.post(
        call_url(session_id, call_id, "/audio/play"),
        {"assetId": asset_id, "mode": mode},
        format="json",
    )
    assert response.status_code == 200, response.content
    playback = response.json()["data"]
    assert set(playback) == PLAYBACK_FIELDS
    return playback


def playback_events(call_id: str) -> list[tuple[str, str, str | None]]:
    events = Event.objects.filter(
        type__startswith="call.playback.", data__callId=call_id
    ).order_by("id")
    return [(e.type, e.data["playbackId"], e.data.get("reason")) for e in events]


def first_sound(samples: np.ndarray) -> int:
    return int(np.flatnonzero(samples)[0])


def start_of(outbound: np.ndarray, samples: np.ndarray) -> int:
    """Where ``samples`` begin in the capture; playback starts on a frame boundary."""
    start = first_sound(outbound) - first_sound(samples)
    assert start % FRAME_SAMPLES == 0, start
    return start


def test_peer_hears_the_asset_sample_for_sample_and_echoes_it_100_ms_later(
    engine: Engine, tenant: Tenant
) -> None:
    client = tenant.client()
    # A real MP3 through the whole pipeline: sniffed, decoded, resampled, normalised.
    asset_id = upload(client, FIXTURES / "bad_truncated.mp3").json()["data"]["id"]
    samples = normalised(asset_id)
    session_id = ready_session(client)
    call_id, _, recorder = active_call(engine, client, session_id)

    playback = play(client, session_id, call_id, asset_id)
    assert playback["assetId"] == asset_id
    assert playback["state"] == "playing"
    assert playback["startedAt"].endswith("Z")
    frames = len(samples) // FRAME_SAMPLES + ECHO_DELAY_FRAMES + 10
    wait_for(lambda: recorder.frames >= frames + 20, timeout=10)
    outbound, inbound = recorder.heard()

    start = start_of(outbound, samples)
    end = start + len(samples)
    np.testing.assert_array_equal(outbound[start:end], samples)
    assert not outbound[:start].any() and not outbound[end:].any()
    delay = ECHO_DELAY_FRAMES * FRAME_SAMPLES
    np.testing.assert_array_equal(inbound[start + delay : end + delay], samples)
    assert not inbound[: start + delay].any()
    wait_for(lambda: len(playback_events(call_id)) == 2)
    assert playback_events(call_id) == [
        ("call.playback.started", playback["playbackId"], None),
        ("call.playback.finished", playback["playbackId"], "completed"),
    ]
    finished = Event.objects.get(type="call.playback.finished", data__callId=call_id)
    assert finished.data["playedMs"] == len(samples) // 16
    assert str(finished.session_public_id) == session_id
    assert finished.data["startedAt"] == playback["startedAt"]


def test_queued_asset_plays_right_after_the_first_without_a_gap(
    engine: Engine, tenant: Tenant
) -> None:
    client = tenant.client()
    first_id, second_id = upload_tone(client, 440, 0.5), upload_tone(client, 880, 0.3)
    first, second = normalised(first_id), normalised(second_id)
    session_id = ready_session(client)
    call_id, _, recorder = active_call(engine, client, session_id)

    one = play(client, session_id, call_id, first_id)
    two = play(client, session_id, call_id, second_id, mode="queue")
    assert (one["state"], two["state"]) == ("playing", "queued")
    assert two["startedAt"] is None
    wait_for(lambda: len(playback_events(call_id)) == 4, timeout=5)
    outbound, _ = recorder.heard()

    both = np.concatenate([first, second])
    start = start_of(outbound, both)
    np.testing.assert_array_equal(outbound[start : start + len(both)], both)
    assert not outbound[start + len(both) :].any()
    assert playback_events(call_id) == [
        ("call.playback.started", one["playbackId"], None),
        ("call.playback.finished", one["playbackId"], "completed"),
        ("call.playback.started", two["playbackId"], None),
        ("call.playback.finished", two["playbackId"], "completed"),
    ]


def test_interrupt_cuts_what_plays_and_plays_the_new_asset_at_once(
    engine: Engine, tenant: Tenant
) -> None:
    client = tenant.client()
    long_id, short_id = upload_tone(client, 300, 3.0), upload_tone(client, 1000, 0.3)
    queued_id = upload_tone(client, 500, 0.3)
    long, short = normalised(long_id), normalised(short_id)
    session_id = ready_session(client)
    call_id, _, recorder = active_call(engine, client, session_id)

    first = play(client, session_id, call_id, long_id)
    queued = play(client, session_id, call_id, queued_id)
    wait_for(lambda: recorder.frames >= 25)
    cut = play(client, session_id, call_id, short_id, mode="interrupt")
    assert cut["state"] == "playing"
    wait_for(lambda: len(playback_events(call_id)) == 5, timeout=5)
    time.sleep(0.1)
    outbound, _ = recorder.heard()

    start = start_of(outbound, long)
    # The long tone plays whole frames up to the interruption, then the short one.
    finished = Event.objects.get(
        type="call.playback.finished", data__playbackId=first["playbackId"]
    )
    played = finished.data["playedMs"] * 16
    assert played % FRAME_SAMPLES == 0 and 0 < played < len(long)
    np.testing.assert_array_equal(outbound[start : start + played], long[:played])
    after = start + played
    np.testing.assert_array_equal(outbound[after : after + len(short)], short)
    assert not outbound[after + len(short) :].any()
    assert playback_events(call_id) == [
        ("call.playback.started", first["playbackId"], None),
        ("call.playback.finished", first["playbackId"], "stopped"),
        ("call.playback.finished", queued["playbackId"], "stopped"),
        ("call.playback.started", cut["playbackId"], None),
        ("call.playback.finished", cut["playbackId"], "completed"),
    ]


def test_stop_silences_the_call_and_drops_the_queue(
    engine: Engine, tenant: Tenant
) -> None:
    client = tenant.client()
    long_id, next_id = upload_tone(client, 300, 3.0), upload_tone(client, 700, 0.5)
    long = normalised(long_id)
    session_id = ready_session(client)
    call_id, _, recorder = active_call(engine, client, session_id)
    first = play(client, session_id, call_id, long_id)
    queued = play(client, session_id, call_id, next_id)
    wait_for(lambda: recorder.frames >= 20)

    response = client.post(call_url(session_id, call_id, "/audio/stop"))

    assert response.status_code == 200, response.content
    stopped = response.json()["data"]["stopped"]
    assert [(p["playbackId"], p["state"]) for p in stopped] == [
        (first["playbackId"], "stopped"),
        (queued["playbackId"], "stopped"),
    ]
    wait_for(lambda: len(playback_events(call_id)) == 3)
    frames_at_stop = recorder.frames
    wait_for(lambda: recorder.frames >= frames_at_stop + 40)
    outbound, _ = recorder.heard()
    start = start_of(outbound, long)
    finished = Event.objects.get(
        type="call.playback.finished", data__playbackId=first["playbackId"]
    )
    played = finished.data["playedMs"] * 16
    np.testing.assert_array_equal(outbound[start : start + played], long[:played])
    # Nothing after the stop: neither the rest of the tone nor the queued asset.
    assert not outbound[start + played :].any()
    assert playback_events(call_id) == [
        ("call.playback.started", first["playbackId"], None),
        ("call.playback.finished", first["playbackId"], "stopped"),
        ("call.playback.finished", queued["playbackId"], "stopped"),
    ]
    # Stopping again is harmless.
    again = client.post(call_url(session_id, call_id, "/audio/stop"))
    assert again.json()["data"] == {"stopped": []}


def test_call_ending_mid_playback_finishes_it_with_call_ended(
    engine: Engine, tenant: Tenant
) -> None:
    client = tenant.client()
    asset_id = upload_tone(client, 300, 3.0)
    session_id = ready_session(client)
    call_id, _, recorder = active_call(engine, client, session_id)
    playback = play(client, session_id, call_id, asset_id)
    wait_for(lambda: recorder.frames >= 10)

    assert client.post(call_url(session_id, call_id, "/end")).status_code == 200

    wait_for(lambda: len(playback_events(call_id)) == 2)
    assert playback_events(call_id) == [
        ("call.playback.started", playback["playbackId"], None),
        ("call.playback.finished", playback["playbackId"], "call_ended"),
    ]
    order = ["call.playback.started", "call.ended", "call.playback.finished"]
    types = list(
        Event.objects.filter(data__callId=call_id, type__in=order)
        .order_by("id")
        .values_list("type", flat=True)
    )
    assert types == order
    is_problem(
        client.post(
            call_url(session_id, call_id, "/audio/play"),
            {"assetId": asset_id},
            format="json",
        ),
        409,
        "call_not_active",
    )
    is_problem(
        client.post(call_url(session_id, call_id, "/audio/stop")),
        409,
        "call_not_active",
    )


def test_playback_mixes_with_other_outbound_audio_and_mute_silences_it(
    engine: Engine, tenant: Tenant
) -> None:
    client = tenant.client()
    asset_id = upload_tone(client, 440, 1.0)
    samples = normalised(asset_id)
    session_id = ready_session(client)
    call_id, runtime, recorder = active_call(engine, client, session_id)
    live = ConstantSource(0.25)
    on_home(lambda: runtime.sources.append(live))
    wait_for(lambda: recorder.frames >= 5)

    play(client, session_id, call_id, asset_id)
    wait_for(lambda: len(playback_events(call_id)) == 2, timeout=5)
    muted = client.post(
        call_url(session_id, call_id, "/mute"), {"muted": True}, format="json"
    )
    assert muted.status_code == 200, muted.content
    play(client, session_id, call_id, asset_id)
    wait_for(lambda: len(playback_events(call_id)) == 4, timeout=5)
    outbound, _ = recorder.heard()

    live_from = int(np.flatnonzero(outbound)[0])
    start = live_from + start_of(outbound[live_from:] - np.float32(0.25), samples)
    expected = np.clip(samples + np.float32(0.25), -1.0, 1.0)
    np.testing.assert_array_equal(outbound[start : start + len(samples)], expected)
    # Muted: the second playback ran its course (its events fired), the peer heard none.
    unmuted_until = int(np.flatnonzero(outbound)[-1]) + 1
    assert not outbound[unmuted_until:].any()
    assert len(outbound) - unmuted_until >= len(samples)


def test_play_refuses_assets_not_ready_or_gone_and_calls_not_active(
    engine: Engine, tenant: Tenant
) -> None:
    client = tenant.client()
    failed_id = upload(client, FIXTURES / "bad_lying_header.wav").json()["data"]["id"]
    ready_id = upload_tone(client, 440, 0.2)
    session_id = ready_session(client)
    call_id, _, _ = active_call(engine, client, session_id)
    url = call_url(session_id, call_id, "/audio/play")

    body = is_problem(
        client.post(url, {"assetId": failed_id}, format="json"), 409, "asset_not_ready"
    )
    assert "failed" in body["detail"]
    AudioAsset.objects.filter(public_id=ready_id).update(status="processing")
    is_problem(
        client.post(url, {"assetId": ready_id}, format="json"), 409, "asset_not_ready"
    )
    AudioAsset.objects.filter(public_id=ready_id).update(status="ready")
    assert client.delete(f"{ASSETS}/{ready_id}").status_code == 200
    is_problem(
        client.post(url, {"assetId": ready_id}, format="json"), 404, "asset_not_found"
    )
    is_problem(
        client.post(url, {"assetId": "nope"}, format="json"), 404, "asset_not_found"
    )
    bad = is_problem(
        client.post(url, {"assetId": failed_id, "mode": "shuffle"}, format="json"),
        400,
        "validation_error",
    )
    assert bad["param"] == "mode"
    is_problem(client.post(url, {}, format="json"), 400, "validation_error")
    assert not playback_events(call_id)


def test_play_into_a_ringing_call_is_409(engine: Engine, tenant: Tenant) -> None:
    client = tenant.client()
    asset_id = upload_tone(client, 440, 0.2)
    session_id = ready_session(client)
    response = client.post(
        f"{API}/test-helpers/sessions/{session_id}/incoming-calls",
        {"from": "4915112345678@s.whatsapp.net"},
        format="json",
    )
    call_id = response.json()["data"]["callId"]

    is_problem(
        client.post(
            call_url(session_id, call_id, "/audio/play"),
            {"assetId": asset_id},
            format="json",
        ),
        409,
        "call_not_active",
    )


def test_deleting_an_asset_does_not_cut_a_playback_already_playing_it(
    engine: Engine, tenant: Tenant
) -> None:
    client = tenant.client()
    asset_id = upload_tone(client, 440, 0.6)
    samples = normalised(asset_id)
    session_id = ready_session(client)
    call_id, _, recorder = active_call(engine, client, session_id)
    play(client, session_id, call_id, asset_id)

    assert client.delete(f"{ASSETS}/{asset_id}").status_code == 200

    wait_for(lambda: len(playback_events(call_id)) == 2, timeout=5)
    outbound, _ = recorder.heard()
    start = start_of(outbound, samples)
    np.testing.assert_array_equal(outbound[start : start + len(samples)], samples)


def test_replayed_play_request_starts_nothing_new(
    engine: Engine, tenant: Tenant
) -> None:
    client = tenant.client()
    asset_id = upload_tone(client, 440, 0.3)
    session_id = ready_session(client)
    call_id, _, _ = active_call(engine, client, session_id)
    url = call_url(session_id, call_id, "/audio/play")

    first = client.post(
        url, {"assetId": asset_id}, format="json", HTTP_IDEMPOTENCY_KEY="p"
    )
    again = client.post(
        url, {"assetId": asset_id}, format="json", HTTP_IDEMPOTENCY_KEY="p"
    )

    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    wait_for(lambda: len(playback_events(call_id)) == 2)
    time.sleep(0.2)
    assert len(playback_events(call_id)) == 2
