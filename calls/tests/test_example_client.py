"""The README's example client works against a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from calls.runtime.engine import Engine
from calls.tests.media_client import chirp
from calls.tests.test_media_socket import media_url, place
from conftest import LiveServer, Tenant

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("fast_network")
def test_example_client_plays_a_wav_and_saves_the_echo(
    engine: Engine, tenant: Tenant, asgi_server: LiveServer, tmp_path: Path
) -> None:
    session_id, call_id = place(tenant.client())
    signal = chirp(1.5)
    soundfile.write(tmp_path / "hello.wav", signal, 16000, subtype="FLOAT")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "play_and_record.py"),
            media_url(asgi_server, session_id, call_id),
            "--key",
            tenant.test_key,
            "--play",
            str(tmp_path / "hello.wav"),
            "--save",
            str(tmp_path / "peer.wav"),
            "--seconds",
            "2.5",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"name": "played"' in result.stdout
    heard, rate = soundfile.read(tmp_path / "peer.wav", dtype="float32")
    assert rate == 16000
    # Saved as 16-bit: the echo is the whole chirp, within one quantisation step.
    start = int(np.argmax(np.abs(heard) > 0))
    np.testing.assert_allclose(
        heard[start : start + len(signal)], signal, atol=1 / 16384
    )
    assert start >= 5 * 320  # at least the echo's 100 ms after the socket opened
