"""The SIP carrier's real peers behave as its tests rely on (``sip_peers.py``).

Two Debian baresip instances and SIPp scenarios talk to each other on loopback: the
echo peer answers and returns the audio, the registrar challenges and refuses, each
refusing callee answers with its code. No Switchboard code is involved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.carriers import sip_peers
from tests.carriers.conftest import wait_for
from tests.carriers.sip_peers import CallerPeer, caller_peer, echo_peer, sipp

CREDENTIALS = {"user": "alice", "pass": "secret", "realm": "trunk.test"}


@pytest.fixture
def caller(tmp_path: Path) -> Iterator[CallerPeer]:
    sip_peers.require_peers()
    with caller_peer(workdir=tmp_path) as peer:
        yield peer


def dominant_hz(wav: Path) -> float:
    """The strongest frequency in a recording, once its writer has closed it."""
    samples, rate = wait_for(lambda: _nonempty(wav), timeout=3)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def recorded_bytes(caller: CallerPeer) -> int:
    with suppress(sip_peers.PeerError):
        return caller.received_wav().stat().st_size
    return 0


def _nonempty(wav: Path) -> tuple[np.ndarray, int] | None:
    samples, rate = soundfile.read(wav, dtype="float64")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    if len(loud) == 0 or loud[-1] - loud[0] < rate // 2:
        return None
    return samples[loud[0] : loud[-1] + 1], rate


def test_echo_peer_answers_and_returns_the_callers_tone(caller: CallerPeer) -> None:
    with echo_peer() as echo:
        caller.dial(echo.uri)
        assert caller.wait_event("CALL_ESTABLISHED")["param"] == echo.uri
        caller.wait_event("CALL_RTPESTAB")
        # A second of the echo recorded: 8 kHz, 16 bit.
        wait_for(lambda: recorded_bytes(caller) > 16_000, timeout=3)
        caller.hangup()
        caller.wait_event("CALL_CLOSED")
    assert dominant_hz(caller.received_wav()) == pytest.approx(440, abs=5)


def test_echo_peer_answers_its_aliases_and_hears_dtmf(caller: CallerPeer) -> None:
    with echo_peer(aliases=("+15551234567",)) as echo:
        caller.dial(echo.uri_for("+15551234567"))
        caller.wait_event("CALL_ESTABLISHED")
        caller.send_dtmf("159#")
        assert wait_for(lambda: echo.dtmf_received() == "159#", timeout=3)
        caller.hangup()
        caller.wait_event("CALL_CLOSED")

        caller.dial(echo.uri_for("+15550000000"))
        assert caller.wait_event("CALL_CLOSED")["param"] == "404 Not Found"


def test_registrar_accepts_the_password_then_refreshes_and_unregisters(
    caller: CallerPeer,
) -> None:
    with sipp("register.xml", keys={**CREDENTIALS, "expires": 2}) as registrar:
        aor = caller.register(registrar.host_port, "alice", "secret", expires=2)
        assert caller.wait_event("REGISTER_OK")["param"] == "200 OK"
        assert 'AUTH username="alice" valid=true' in registrar.log()
        registrar.wait_log("REGISTER expires=2", timeout=4)  # refreshed at 90 %
        caller.unregister(aor)
        registrar.wait_log("REGISTER expires=0")


def test_registrar_refuses_a_wrong_password(caller: CallerPeer) -> None:
    with sipp("register.xml", keys={**CREDENTIALS, "expires": 60}) as registrar:
        caller.register(registrar.host_port, "alice", "wrong")
        assert caller.wait_event("REGISTER_FAIL")["param"] == "403 Forbidden"
        assert 'AUTH username="alice" valid=false' in registrar.log()
        assert registrar.wait_exit() == 0


@pytest.mark.parametrize(
    ("scenario", "answer"),
    [
        ("invite_486.xml", "486 Busy Here"),
        ("invite_486_immediate.xml", "486 Busy Here"),
        ("invite_603.xml", "603 Decline"),
        ("invite_503.xml", "503 Service Unavailable"),
        ("invite_404.xml", "404 Not Found"),
        ("invite_480.xml", "480 Temporarily Unavailable"),
        ("invite_488.xml", "488 Not Acceptable Here"),
    ],
)
def test_refusing_callee_rings_then_answers_its_code(
    caller: CallerPeer, scenario: str, answer: str
) -> None:
    with sipp(scenario) as callee:
        caller.dial(callee.uri("+15551234567"))
        caller.wait_event("CALL_RINGING")
        assert caller.wait_event("CALL_CLOSED")["param"] == answer
        assert callee.wait_exit() == 0
    assert f"INVITE {callee.uri('+15551234567')}" in callee.log()


def test_callee_that_never_answers_takes_the_cancel(caller: CallerPeer) -> None:
    with sipp("invite_no_answer.xml") as callee:
        caller.dial(callee.uri())
        caller.wait_event("CALL_RINGING")
        caller.hangup()
        caller.wait_event("CALL_CLOSED")
        callee.wait_log("CANCEL received")
        assert callee.wait_exit() == 0  # 200 and 487 sent, the 487 acknowledged


@pytest.mark.parametrize("media", [True, False])
def test_answering_callee_echoes_only_with_media_and_hangs_up_itself(
    caller: CallerPeer, media: bool
) -> None:
    with sipp("invite_answer.xml", media=media, hangup_after=1.5) as callee:
        caller.dial(callee.uri())
        caller.wait_event("CALL_ESTABLISHED")
        assert caller.wait_event("CALL_CLOSED", timeout=4)["param"].startswith(
            "Connection reset"
        )
        assert callee.wait_exit() == 0
    assert "BYE sent" in callee.log()
    heard = any(event["type"] == "CALL_RTPESTAB" for event in caller.events)
    assert heard is media


@pytest.mark.parametrize(("password", "valid"), [("secret", True), ("wrong", False)])
def test_trunk_challenges_the_invite_and_checks_the_digest(
    tmp_path: Path, password: str, valid: bool
) -> None:
    sip_peers.require_peers()
    with (
        sipp("invite_auth.xml", keys=CREDENTIALS) as trunk,
        caller_peer(
            account_params=("auth_user=alice", f"auth_pass={password}"),
            workdir=tmp_path,
        ) as caller,
    ):
        caller.dial(trunk.uri("+15551234567"))
        if valid:
            caller.wait_event("CALL_ESTABLISHED")
            caller.hangup()
            trunk.wait_log("BYE received")
        else:
            assert caller.wait_event("CALL_CLOSED")["param"] == "403 Forbidden"
        assert trunk.wait_exit() == 0
    assert f'AUTH username="alice" valid={str(valid).lower()}' in trunk.log()


def test_proxy_challenges_the_invite_and_logs_the_username(tmp_path: Path) -> None:
    sip_peers.require_peers()
    with (
        sipp("invite_proxy_auth.xml", keys={"realm": "trunk.test"}) as proxy,
        caller_peer(
            account_params=("auth_user=alice", "auth_pass=secret"), workdir=tmp_path
        ) as caller,
    ):
        caller.dial(proxy.uri("+15551234567"))
        caller.wait_event("CALL_ESTABLISHED")
        assert 'AUTH username="alice"' in proxy.log()
        assert "Proxy-Authorization: Digest" in proxy.messages()


def test_dtmf_callee_presses_keys_in_rfc_4733(tmp_path: Path) -> None:
    sip_peers.require_peers(pcap_playback=True)
    with (
        sipp("invite_dtmf.xml", dtmf="159#*0", hangup_after=4) as callee,
        caller_peer(workdir=tmp_path) as caller,
    ):
        caller.dial(callee.uri())
        caller.wait_event("CALL_ESTABLISHED")
        assert wait_for(lambda: caller.dtmf_received() == "159#*0", timeout=5)
        starts = [e["param"] for e in caller.events if e["type"] == "CALL_DTMF_START"]
        assert starts == list("159#*0")
