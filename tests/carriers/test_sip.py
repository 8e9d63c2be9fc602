"""The SIP trunk carrier against real peers: SIPp as registrar and trunk, Debian baresip
as the far end. What the contract suite (``test_contract.py``) does not cover: REGISTER
with digest auth, INVITE challenges, the rest of the status mapping, CANCEL, DTMF both
ways, the media timeout, recordings, and bad input.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from typing import Any

import pytest
from django.conf import settings as django_settings

from calls.models import Call, Session
from calls.runtime.engine import Engine
from calls.tests.media_client import MediaClient
from conftest import LiveServer, Tenant, is_problem
from events.models import Event
from recordings.models import Recording
from tests.carriers import sip_peers
from tests.carriers.conftest import heard_fraction, wait_for

SESSIONS = "/api/v1/sessions"

pytestmark = pytest.mark.usefixtures("with_sip", "fast_network")


@pytest.fixture(autouse=True)
def _peers() -> None:
    sip_peers.require_peers()


def create(tenant: Tenant, **sip: Any) -> dict[str, Any]:
    body = {
        "displayName": "Trunk",
        "carrier": "sip",
        "sip": {"username": f"line{secrets.token_hex(4)}", "register": False, **sip},
    }
    response = tenant.client("live").post(SESSIONS, body, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json()["data"])


def session_of(tenant: Tenant, session_id: str) -> dict[str, Any]:
    return dict(tenant.client("live").get(f"{SESSIONS}/{session_id}").json()["data"])


def connected(tenant: Tenant, **sip: Any) -> dict[str, Any]:
    session = create(tenant, **sip)
    tenant.client("live").post(f"{SESSIONS}/{session['sessionId']}/connect")
    wait_for(lambda: session_of(tenant, session["sessionId"])["connected"], timeout=15)
    return session


def place(tenant: Tenant, session_id: str, to: str) -> dict[str, Any]:
    response = tenant.client("live").post(
        f"{SESSIONS}/{session_id}/calls", {"to": to}, format="json"
    )
    assert response.status_code == 201, response.content
    return dict(response.json()["data"])


def call_of(tenant: Tenant, session_id: str, call_id: str) -> dict[str, Any]:
    return dict(
        tenant.client("live")
        .get(f"{SESSIONS}/{session_id}/calls/{call_id}")
        .json()["data"]
    )


def reaches(tenant: Tenant, session_id: str, call_id: str, *states: str) -> Any:
    return wait_for(
        lambda: (
            (data := call_of(tenant, session_id, call_id))["state"] in states and data
        ),
        timeout=15,
    )


# ---------------------------------------------------------------- registration


def test_a_registering_trunk_registers_with_digest_auth_and_unregisters(
    tenant: Tenant, engine: Engine
) -> None:
    keys: dict[str, str | int] = {
        "user": "alice",
        "pass": "s3cret",
        "realm": "trunk.test",
        "expires": 60,
    }
    with sip_peers.sipp("register.xml", keys=keys, hangup_after=60) as registrar:
        session = connected(
            tenant,
            server=registrar.host_port,
            username="+15551230000",
            authUsername="alice",
            password="s3cret",
            register=True,
        )
        registrar.wait_log('AUTH username="alice" valid=true')
        assert session_of(tenant, session["sessionId"])["lastError"] is None
        tenant.client("live").post(f"{SESSIONS}/{session['sessionId']}/disconnect")
        registrar.wait_log("REGISTER expires=0", timeout=10)
    assert "s3cret" not in str(session_of(tenant, session["sessionId"]))


def test_a_refused_registration_is_an_error_with_the_registrar_status(
    tenant: Tenant, engine: Engine
) -> None:
    keys: dict[str, str | int] = {
        "user": "alice",
        "pass": "right",
        "realm": "trunk.test",
        "expires": 60,
    }
    with sip_peers.sipp("register.xml", keys=keys) as registrar:
        session = create(
            tenant,
            server=registrar.host_port,
            username="alice",
            password="wrong",
            register=True,
        )
        tenant.client("live").post(f"{SESSIONS}/{session['sessionId']}/connect")
        failed = wait_for(
            lambda: (
                (data := session_of(tenant, session["sessionId"]))["connectionState"]
                == "error"
                and data
            ),
            timeout=15,
        )
    assert failed["lastError"]["code"] == "403"
    assert "Forbidden" in failed["lastError"]["message"]
    assert failed["status"] == "error"
    # Calls need a connected line.
    refused = tenant.client("live").post(
        f"{SESSIONS}/{session['sessionId']}/calls",
        {"to": "+15557654321"},
        format="json",
    )
    is_problem(refused, 409, "session_not_ready")


# ---------------------------------------------------------------- calling out


def test_an_invite_challenge_is_answered_and_the_number_goes_to_the_trunk(
    tenant: Tenant, engine: Engine
) -> None:
    keys = {"user": "alice", "pass": "s3cret", "realm": "trunk.test"}
    with sip_peers.sipp("invite_auth.xml", keys=keys, hangup_after=10) as trunk:
        session = connected(
            tenant,
            server=trunk.host_port,
            username="+15551230000",
            authUsername="alice",
            password="s3cret",
        )
        call = place(tenant, session["sessionId"], "+1 (555) 765-4321")
        assert call["peerJid"] == "+15557654321"
        reaches(tenant, session["sessionId"], call["callId"], "active")
        log = trunk.wait_log('AUTH username="alice" valid=true')
        assert "INVITE sip:+15557654321@" in log
        ended = tenant.client("live").post(
            f"{SESSIONS}/{session['sessionId']}/calls/{call['callId']}/end"
        )
        assert ended.json()["data"]["endReason"] == "completed"
        trunk.wait_log("BYE received")


@pytest.mark.parametrize(
    ("scenario", "reason", "code"),
    [
        ("invite_404.xml", "failed", "404"),
        ("invite_480.xml", "no_answer", None),
        ("invite_488.xml", "failed", "488"),
    ],
)
def test_sip_statuses_map_to_end_reasons(
    tenant: Tenant, engine: Engine, scenario: str, reason: str, code: str | None
) -> None:
    with sip_peers.sipp(scenario) as trunk:
        session = connected(tenant, server=trunk.host_port)
        call = place(tenant, session["sessionId"], "+15557654321")
        data = reaches(tenant, session["sessionId"], call["callId"], "ended")
    assert data["endReason"] == reason
    if code is None:
        assert data["endDetail"] is None
    else:
        assert (
            data["endDetail"]["code"] == code and data["endDetail"]["carrier"] == "sip"
        )


def test_ending_a_ringing_call_cancels_the_invite(
    tenant: Tenant, engine: Engine
) -> None:
    with sip_peers.sipp("invite_no_answer.xml") as trunk:
        session = connected(tenant, server=trunk.host_port)
        call = place(tenant, session["sessionId"], "+15557654321")
        reaches(tenant, session["sessionId"], call["callId"], "ringing")
        ended = tenant.client("live").post(
            f"{SESSIONS}/{session['sessionId']}/calls/{call['callId']}/end"
        )
        assert ended.json()["data"]["endReason"] == "completed"
        trunk.wait_log("CANCEL received")


def test_a_call_without_rtp_ends_failed_with_a_media_timeout(
    tenant: Tenant, engine: Engine
) -> None:
    with sip_peers.sipp("invite_answer.xml", media=False, hangup_after=60) as trunk:
        session = connected(tenant, server=trunk.host_port)
        call = place(tenant, session["sessionId"], "+15557654321")
        reaches(tenant, session["sessionId"], call["callId"], "active")
        data = wait_for(
            lambda: (
                (d := call_of(tenant, session["sessionId"], call["callId"]))["state"]
                == "ended"
                and d
            ),
            timeout=django_settings.SIP_MEDIA_TIMEOUT_S + 15,
        )
    assert data["endReason"] == "failed"
    assert data["endDetail"]["code"] == "media_timeout"


def test_no_common_codec_fails_the_call_with_488(
    tenant: Tenant, engine: Engine, settings: Any
) -> None:
    # The peer's 488 may take longer than fast_network's 0.6 s ring timeout on a busy
    # machine, which would end the call no_answer first.
    settings.CALL_RING_TIMEOUT_S = 15
    with sip_peers.echo_peer(codecs=("pcmu",)) as echo:
        session = connected(tenant, server=echo.host_port, codecs=["opus"])
        call = place(tenant, session["sessionId"], echo.uri)
        data = reaches(tenant, session["sessionId"], call["callId"], "ended")
    assert data["endReason"] == "failed" and data["endDetail"]["code"] == "488"


# ---------------------------------------------------------------- calls coming in


def test_an_invite_for_no_session_gets_404_and_changes_nothing(
    tenant: Tenant, engine: Engine
) -> None:
    connected(tenant, server="127.0.0.1:5999")  # the stack is up, this user exists
    with sip_peers.caller_peer() as caller:
        caller.dial(f"sip:nobody-here@{django_settings.SIP_BIND}")
        closed = caller.wait_event("CALL_CLOSED", timeout=10)
    assert "404 Not Found" in str(closed), closed
    assert not Call.objects.exists()


# ---------------------------------------------------------------- DTMF


def test_dtmf_goes_out_as_rfc4733_and_comes_back_as_events_and_frames(
    tenant: Tenant, engine: Engine, asgi_server: LiveServer
) -> None:
    with sip_peers.echo_peer() as echo:
        session = connected(tenant, server=echo.host_port)
        call = place(tenant, session["sessionId"], echo.uri)
        reaches(tenant, session["sessionId"], call["callId"], "active")
        url = (
            f"{asgi_server.ws_url}{SESSIONS}/{session['sessionId']}"
            f"/calls/{call['callId']}/media"
        )

        async def scenario() -> list[str]:
            async with MediaClient(url, tenant.live_key) as client:
                await client.wait_for(lambda: client.messages)
                sent = await asyncio.to_thread(
                    tenant.client("live").post,
                    f"{SESSIONS}/{session['sessionId']}/calls/{call['callId']}/dtmf",
                    {"digits": "159#"},
                    format="json",
                )
                assert sent.status_code == 200, sent.content
                await client.wait_for(lambda: len(client.of_type("dtmf")) >= 4, 15)
                return [frame["digit"] for frame in client.of_type("dtmf")]

        heard = asyncio.run(scenario())
        wait_for(lambda: echo.dtmf_received() == "159#", timeout=10)
    # The echo peer sends the keys back: they arrive as frames and as events.
    assert heard == list("159#")
    # Each event is written off the media path: wait for the last one.
    events = wait_for(
        lambda: (
            (found := list(Event.objects.filter(type="call.dtmf").order_by("pk")))
            and len(found) >= 4
            and found
        )
    )
    assert [event.data["digit"] for event in events] == list("159#")
    assert all(event.data["callId"] == call["callId"] for event in events)
    assert all(event.data["durationMs"] >= 0 for event in events)


def test_dtmf_is_refused_where_the_carrier_has_none_and_for_bad_digits(
    tenant: Tenant, engine: Engine
) -> None:
    client = tenant.client()
    session_id = client.post(SESSIONS, {"displayName": "s"}, format="json").json()[
        "data"
    ]["sessionId"]
    client.post(f"{SESSIONS}/{session_id}/connect")
    client.post(f"/api/v1/test-helpers/sessions/{session_id}/scan")
    call = client.post(
        f"{SESSIONS}/{session_id}/calls",
        {"to": "15550000001@s.whatsapp.net"},
        format="json",
    ).json()["data"]
    wait_for(lambda: Call.objects.get(public_id=call["callId"]).state == "active")
    url = f"{SESSIONS}/{session_id}/calls/{call['callId']}/dtmf"
    is_problem(
        client.post(url, {"digits": "12"}, format="json"),
        409,
        "not_supported_by_carrier",
    )
    bad = client.post(url, {"digits": "12x"}, format="json")
    assert is_problem(bad, 400, "validation_error")["param"] == "digits"


# ---------------------------------------------------------------- the rest


@pytest.fixture
def tasks_here() -> Any:
    """Finalise recordings in this process (with REDIS_URL, Celery is not eager)."""
    from config.celery_app import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.mark.usefixtures("tasks_here")
def test_a_sip_call_is_recorded_like_any_call(tenant: Tenant, engine: Engine) -> None:
    with sip_peers.echo_peer() as echo:
        session = connected(tenant, server=echo.host_port)
        call = place(tenant, session["sessionId"], echo.uri)
        reaches(tenant, session["sessionId"], call["callId"], "active")
        wait_for(lambda: engine.runtimes[call["callId"]].media_frames >= 60, timeout=10)
        tenant.client("live").post(
            f"{SESSIONS}/{session['sessionId']}/calls/{call['callId']}/end"
        )
        recordings = wait_for(
            lambda: (
                (
                    found := list(
                        Recording.objects.filter(call__public_id=call["callId"])
                    )
                )
                and len(found) == 3
                and found
            ),
            timeout=15,
        )
    assert sorted(r.kind for r in recordings) == ["inbound", "mixed", "outbound"]
    assert all(r.duration_ms >= 1000 for r in recordings)


def test_audio_the_media_clock_wrote_in_a_burst_is_not_heard_late_for_good(
    tenant: Tenant, engine: Engine
) -> None:
    """After a stall the media clock catches up: several ticks' audio reach the stack's
    send queue at once, which sends 20 ms every 20 ms. The leg drains that backlog in
    the next silence, so the far end does not hear the rest of the call that late."""
    import numpy as np

    from audio import FRAME_SAMPLES
    from calls.carriers.sip.leg import TX_TARGET_BYTES, SipLeg
    from config import home

    with sip_peers.echo_peer() as echo:
        session = connected(tenant, server=echo.host_port)
        call = place(tenant, session["sessionId"], echo.uri)
        reaches(tenant, session["sessionId"], call["callId"], "active")
        runtime = engine.runtimes[call["callId"]]
        wait_for(lambda: runtime.media_frames >= 25, timeout=10)
        leg = runtime.leg
        assert isinstance(leg, SipLeg)
        t = np.arange(FRAME_SAMPLES) / 16_000
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)

        async def catch_up() -> int:
            for _ in range(10):  # on the loop, between two of the clock's ticks
                leg.exchange(tone)
            return int(leg.call.audio.info().tx_buffered)

        backlog = home.run_sync(catch_up())
        assert backlog >= 8 * FRAME_SAMPLES * 2
        # The call carries silence (no client): the backlog drains to the target.
        wait_for(
            lambda: leg.call.audio.info().tx_buffered <= TX_TARGET_BYTES, timeout=5
        )
        assert leg.tx_trimmed_frames >= 6
        assert (
            call_of(tenant, session["sessionId"], call["callId"])["state"] == "active"
        )


def _may_set_other_threads_slack() -> bool:
    """Root or CAP_SYS_NICE (bit 23 of the effective capabilities)."""
    from pathlib import Path

    status = Path("/proc/self/status").read_text()
    effective = next(line for line in status.splitlines() if line.startswith("CapEff"))
    return bool(int(effective.split()[1], 16) >> 23 & 1)


@pytest.mark.skipif(
    not _may_set_other_threads_slack(),
    reason="setting (and reading) another thread's timer slack needs CAP_SYS_NICE",
)
def test_a_calls_send_thread_wakes_with_the_configured_timer_slack(
    tenant: Tenant, engine: Engine
) -> None:
    import threading
    from pathlib import Path

    from calls.carriers.sip.leg import SEND_THREADS

    def send_threads() -> set[int]:
        found = set()
        for task in Path("/proc/self/task").iterdir():
            try:
                if (task / "comm").read_text().strip() in SEND_THREADS:
                    found.add(int(task.name))
            except OSError:
                continue
        return found

    before = send_threads()
    with sip_peers.echo_peer() as echo:
        session = connected(tenant, server=echo.host_port)
        call = place(tenant, session["sessionId"], echo.uri)
        reaches(tenant, session["sessionId"], call["callId"], "active")
        expected = django_settings.SIP_SEND_SLACK_MS * 1_000_000

        def slack_of_new() -> dict[int, int]:
            found = {}
            for tid in send_threads() - before:
                try:
                    found[tid] = int(Path(f"/proc/{tid}/timerslack_ns").read_text())
                except OSError:  # ended meanwhile
                    continue
            return found

        # Set once the call's received audio first arrives.
        slack = wait_for(
            lambda: (
                (found := slack_of_new())
                and set(found.values()) == {expected}
                and found
            ),
            timeout=10,
        )
        own = int(Path(f"/proc/{threading.get_native_id()}/timerslack_ns").read_text())
        tenant.client("live").post(
            f"{SESSIONS}/{session['sessionId']}/calls/{call['callId']}/end"
        )
    assert len(slack) == 1  # the stack's send thread for this call
    assert own != expected  # only theirs changed


def test_garbage_on_the_sip_port_harms_no_call(tenant: Tenant, engine: Engine) -> None:
    with sip_peers.echo_peer() as echo:
        session = connected(tenant, server=echo.host_port)
        host, port = django_settings.SIP_BIND.rsplit(":", 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for junk in (b"\x00\xff" * 700, b"INVITE nonsense\r\n\r\n", b"SIP/2.0 200"):
                sock.sendto(junk, (host, int(port)))
        call = place(tenant, session["sessionId"], echo.uri)
        reaches(tenant, session["sessionId"], call["callId"], "active")
        assert Session.objects.get(public_id=session["sessionId"]).connected
        ended = tenant.client("live").post(
            f"{SESSIONS}/{session['sessionId']}/calls/{call['callId']}/end"
        )
        assert ended.json()["data"]["endReason"] == "completed"


@pytest.mark.parametrize("codec", ["pcmu", "pcma", "g722", "opus"])
def test_each_codec_carries_the_audio_both_ways(
    tenant: Tenant, engine: Engine, asgi_server: LiveServer, codec: str
) -> None:
    """A sweep sent through the live socket comes back from the echo peer over each
    negotiated codec (by correlation: the codecs are lossy)."""
    import numpy as np

    from calls.tests.media_client import chirp

    with sip_peers.echo_peer() as echo:
        session = connected(tenant, server=echo.host_port, codecs=[codec])
        call = place(tenant, session["sessionId"], echo.uri)
        reaches(tenant, session["sessionId"], call["callId"], "active")
        url = (
            f"{asgi_server.ws_url}{SESSIONS}/{session['sessionId']}"
            f"/calls/{call['callId']}/media"
        )
        # A sweep within every codec's band (PCMU/PCMA stop at 4 kHz).
        signal = chirp(2.0, amplitude=0.4)

        async def scenario() -> np.ndarray:
            async with MediaClient(url, tenant.live_key) as client:
                await client.wait_for(lambda: client.messages)
                await client.stream(signal)
                await asyncio.sleep(1.0)
                return client.received()

        received = asyncio.run(scenario())
        tenant.client("live").post(
            f"{SESSIONS}/{session['sessionId']}/calls/{call['callId']}/end"
        )
    assert heard_fraction(received, signal) >= 0.9, codec
    # The echo keeps the sweep's level (no channel or rate mix-up halves or garbles it).
    start = int(np.argmax(np.correlate(received, signal[:1600], mode="valid")))
    window = received[start : start + len(signal)]
    assert 0.5 < np.sqrt(np.mean(window**2)) / np.sqrt(np.mean(signal**2)) < 1.5
