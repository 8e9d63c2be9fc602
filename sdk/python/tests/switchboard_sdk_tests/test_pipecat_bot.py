"""The Pipecat example bot, run as a user would, on a call to the echo peer.

The bot greets with a chirp; the echo peer says it back 100 ms later; the bot says
that back at half volume; the peer hears it. The call's ``outbound`` recording (what
the peer heard) holds the greeting and, later, its echo through the bot.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
from switchboard_sdk import Switchboard

from conftest import LiveServer, Tenant
from switchboard_sdk_tests.conftest import active_call

ROOT = Path(__file__).resolve().parents[4]
BOT = ROOT / "examples" / "pipecat_echo_bot.py"
GREETING_S = 0.3


def greeting() -> np.ndarray:
    """The bot's chirp, as floats (the bot's ``greeting()`` at 16 kHz)."""
    t = np.arange(int(GREETING_S * 16000)) / 16000
    sweep = np.cos(2 * np.pi * (300 * t + (3000 - 300) / (2 * GREETING_S) * t**2))
    return (0.5 * 32767 * sweep).astype("<i2") / 32768


def wav_samples(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (16000, 1)
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / 32768


def lines_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_the_echo_bot_hears_the_peer_and_the_peer_hears_the_bot(
    sb: Switchboard, live: LiveServer, tenant: Tenant
) -> None:
    session_id, call_id = active_call(sb, record=True)
    run = subprocess.run(
        [
            sys.executable,
            str(BOT),
            "--base-url",
            live.url,
            "--api-key",
            tenant.test_key,
            "--session",
            session_id,
            "--call",
            call_id,
            "--greeting",
            str(GREETING_S),
            "--rounds",
            "1",  # the bot stops once the peer has heard its first echo...
            "--hang-up",  # ...and ends the call
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Shown when the test fails: everything the bot printed and logged.
    print(run.stdout)
    print(run.stderr, file=sys.stderr)
    assert run.returncode == 0, run.stderr[-3000:]
    said = lines_of(run.stdout)
    kinds = [line["event"] for line in said]
    assert kinds[0] == "connected" and kinds[-1] == "done", said
    marks = {line["name"]: line for line in said if line["event"] == "mark"}
    # (The bot may mark a later echo too while it stops.)
    assert {"greeting", "echo-1"} <= marks.keys(), (said, run.stderr[-3000:])
    # The greeting was played to the peer, all of it; the peer's echo of it reached
    # the bot, and the bot's echo of that was played to the peer in turn.
    # (A mark follows the audio before it to within one 40 ms output chunk.)
    assert marks["greeting"]["playedMs"] >= GREETING_S * 1000 - 40
    assert "heard" in kinds
    assert marks["echo-1"]["playedMs"] > marks["greeting"]["playedMs"] + 300
    assert not any(mark["cleared"] for mark in marks.values())

    ended = sb.calls.get(session_id, call_id)
    assert ended["state"] == "ended" and ended["endReason"] == "completed"

    # What the peer heard: the greeting, then the same chirp again at half volume,
    # after the 100 ms echo and the bot's own latency.
    [outbound] = list(sb.recordings.list(call_id=call_id, kind="outbound"))
    heard = wav_samples(sb.recordings.download(outbound["recordingId"]))
    chirp = greeting()
    gain = np.correlate(heard, chirp, "valid") / np.dot(chirp, chirp)
    first = int(np.argmax(gain))
    assert 0.9 <= gain[first] <= 1.1, gain[first]
    later = first + 1600 + int(np.argmax(gain[first + 1600 :]))
    assert 0.4 <= gain[later] <= 0.6, gain[later]
    assert later - first < 16000  # within a second: a live echo, not a fluke
