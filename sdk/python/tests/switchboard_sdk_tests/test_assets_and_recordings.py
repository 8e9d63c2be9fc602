"""Upload an asset, play it into a call, hear it echoed, download the recordings."""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path

import numpy as np
import pytest
from switchboard_sdk import AsyncSwitchboard, AudioFrame, Switchboard, SwitchboardError
from switchboard_sdk.audio import chirp

from calls.tests.conftest import wait_for
from switchboard_sdk_tests.conftest import active_call


def wav_of(samples: np.ndarray) -> bytes:
    pcm = np.rint(samples * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(pcm.tobytes())
    return out.getvalue()


def contains(heard: np.ndarray, sound: np.ndarray) -> bool:
    """``sound`` is in ``heard``, to within two 16-bit steps (the asset is stored
    as 16-bit PCM after decoding)."""
    if len(heard) < len(sound):
        return False
    at = int(np.argmax(np.correlate(heard, sound, "valid")))
    return bool(np.abs(heard[at : at + len(sound)] - sound).max() <= 2 / 32768)


def test_an_uploaded_asset_plays_into_the_call_and_comes_back(
    sb: Switchboard, async_sb: AsyncSwitchboard, tmp_path: Path
) -> None:
    sweep = np.asarray(chirp(0.5), dtype=np.float64)
    path = tmp_path / "sweep.wav"
    path.write_bytes(wav_of(sweep))
    asset = sb.assets.upload(path, idempotency_key="sweep-1")
    assert asset["filename"] == "sweep.wav" and asset["status"] in (
        "processing",
        "ready",
    )
    ready = sb.assets.wait_ready(asset["id"], timeout=30)
    assert ready["status"] == "ready" and ready["durationMs"] == 500
    assert [a["id"] for a in sb.assets.list(status="ready")] == [asset["id"]]

    session_id, call_id = active_call(sb, record=True)

    async def scenario() -> None:
        async with async_sb, async_sb.media(session_id, call_id) as media:
            playback = await async_sb.calls.play(session_id, call_id, asset["id"])
            assert playback["assetId"] == asset["id"]
            heard = bytearray()
            async with asyncio.timeout(10):
                async for event in media:
                    if isinstance(event, AudioFrame):
                        heard += event.data
                        window = bytes(heard[-4 * (len(sweep) + 640) :])
                        tail = np.frombuffer(window, "<f4")
                        if contains(tail, sweep):
                            break
            stopped = await async_sb.calls.stop_audio(session_id, call_id)
            assert stopped["stopped"] == []  # it had finished

    asyncio.run(scenario())
    sb.calls.end(session_id, call_id)

    # Three recordings appear a moment after the call ends.
    recordings = wait_for(
        lambda: (
            (found := list(sb.recordings.list(call_id=call_id)))
            and len(found) == 3
            and found
        )
    )
    assert {r["kind"] for r in recordings} == {"inbound", "outbound", "mixed"}
    [outbound] = [r for r in recordings if r["kind"] == "outbound"]
    assert sb.recordings.get(outbound["recordingId"])["callId"] == call_id
    wav = sb.recordings.download(outbound["recordingId"], to=tmp_path / "out.wav")
    assert (tmp_path / "out.wav").read_bytes() == wav
    with wave.open(io.BytesIO(wav)) as stored:
        played = np.frombuffer(stored.readframes(stored.getnframes()), "<i2") / 32768
    assert contains(played, sweep)  # the peer heard the asset

    assert sb.recordings.delete(outbound["recordingId"])["kind"] == "outbound"
    assert sb.assets.delete(asset["id"])["id"] == asset["id"]
    with pytest.raises(SwitchboardError) as raised:
        sb.assets.get(asset["id"])
    assert raised.value.status == 404


def test_a_file_that_is_not_audio_is_refused_with_415(sb: Switchboard) -> None:
    with pytest.raises(SwitchboardError) as raised:
        sb.assets.upload(b"just some text, not audio", filename="notes.wav")
    assert (raised.value.status, raised.value.code) == (415, "unsupported_format")
    assert "acceptedFormats" in raised.value.body


def test_the_environment_settings_are_read_and_changed(sb: Switchboard) -> None:
    environment = sb.environment.get()
    assert environment["kind"] == "test"
    changed = sb.environment.update(recording_retention_days=7, record_calls=False)
    assert changed["recordingRetentionDays"] == 7 and changed["recordCalls"] is False
    assert (changed["eventRetentionDays"], changed["callRetentionDays"]) == (30, 90)
    retention = sb.environment.update(
        event_retention_days=10,
        call_retention_days=45,
        end_call_when_client_gone_after_s=0,
    )
    assert retention["recordingRetentionDays"] == 7  # untouched
    assert (
        retention["eventRetentionDays"],
        retention["callRetentionDays"],
        retention["endCallWhenClientGoneAfterS"],
    ) == (10, 45, 0)
    assert sb.environment.get()["callRetentionDays"] == 45
    secret = sb.environment.rotate_signing_secret()
    assert secret["signingSecret"]
