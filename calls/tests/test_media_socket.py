"""The live media socket over real TCP WebSockets (DESIGN §5)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import numpy as np
import pytest
import websockets
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import ApiKey
from calls.models import Call, CallState
from calls.runtime.engine import Engine
from calls.tests.conftest import wait_for
from calls.tests.media_client import FRAME, MediaClient, chirp, find
from conftest import LiveServer, Tenant

pytestmark = pytest.mark.usefixtures("fast_network")

ECHO = "15550000001@s.whatsapp.net"


def place(client: APIClient, to: str = ECHO) -> tuple[str, str]:
    session_id = client.post(
        "/api/v1/sessions", {"displayName": "m"}, format="json"
    ).json()["data"]["sessionId"]
    client.post(f"/api/v1/sessions/{session_id}/connect")
    client.post(f"/api/v1/test-helpers/sessions/{session_id}/scan")
    call = client.post(
        f"/api/v1/sessions/{session_id}/calls", {"to": to}, format="json"
    )
    assert call.status_code == 201, call.content
    call_id = call.json()["data"]["callId"]
    wait_for(lambda: Call.objects.get(public_id=call_id).state == CallState.ACTIVE)
    return session_id, call_id


def media_url(server: LiveServer, session_id: str, call_id: str) -> str:
    return f"{server.ws_url}/api/v1/sessions/{session_id}/calls/{call_id}/media"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def live_call(
    engine: Engine, tenant: Tenant, asgi_server: LiveServer
) -> tuple[str, str, str]:
    session_id, call_id = place(tenant.client())
    return media_url(asgi_server, session_id, call_id), session_id, call_id


def test_ready_is_the_first_frame_and_describes_the_media(
    live_call, tenant: Tenant
) -> None:
    url, _, call_id = live_call

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.messages)
            first = client.messages[0][1]
            assert first["type"] == "ready"
            assert first["media"] == {
                "direction": "bidirectional",
                "encoding": "pcm_f32le",
                "sampleRate": 16000,
                "channels": 1,
                "frameMs": 20,
            }
            assert (
                first["call"]["callId"] == call_id
                and first["call"]["state"] == "active"
            )
            await client.wait_for(lambda: len(client.audio) >= 5)
            assert all(len(frame) == FRAME for _, frame in client.audio)

    run(scenario())


def test_a_chirp_comes_back_sample_exact_100_ms_later(
    live_call, tenant: Tenant
) -> None:
    url, _, _ = live_call
    signal = chirp(1.0)

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.messages)
            sent_at = await client.stream(signal)
            await client.wait_for(
                lambda: find(client.received(), signal) >= 0, timeout=5
            )
            first_echo = next(t for t, frame in client.audio if frame.any())
            # The peer hears it after at most one tick and answers exactly 100 ms (five
            # ticks) later. Ticks keep to absolute deadlines, so a frame taken by a late
            # tick is answered on time from the deadline, that much less than 100 ms
            # after it arrived: a few milliseconds on a busy machine.
            delay = first_echo - sent_at
            assert 0.100 - 0.010 <= delay <= 0.100 + 0.080, delay

    run(scenario())


def test_faster_than_real_time_audio_is_paced_with_buffer_watermarks(
    live_call, tenant: Tenant
) -> None:
    url, _, _ = live_call
    signal = chirp(3.0, amplitude=0.3)

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.messages)
            started = time.monotonic()
            for index in range(0, len(signal), 16000):
                await client.send_audio(signal[index : index + 16000])
            await client.wait_for(
                lambda: find(client.received(), signal) >= 0, timeout=8
            )
            buffers = client.of_type("buffer")
            levels = [b["bufferedMs"] for b in buffers]
            assert buffers[0]["pauseMs"] == 500 and buffers[0]["resumeMs"] == 250
            assert buffers[0]["capacityMs"] == 10000
            assert max(levels) >= 2500
            paused_at = next(i for i, level in enumerate(levels) if level >= 500)
            assert any(level <= 250 for level in levels[paused_at:]), levels
            # Reports at least every 200 ms while audio waits.
            times = [t for t, m in client.messages if m["type"] == "buffer"]
            gaps = np.diff(
                [t for t, level in zip(times, levels, strict=True) if level > 0]
            )
            assert gaps.max() <= 0.200 + 0.060, gaps.max()
            # Three seconds of audio sent at once still plays (and echoes) at real time.
            echo_times = [t for t, frame in client.audio if frame.any()]
            assert echo_times[-1] - echo_times[0] >= 2.9
            assert echo_times[-1] - started >= 3.0

    run(scenario())


def test_audio_beyond_capacity_is_dropped_and_reported(
    live_call, tenant: Tenant
) -> None:
    url, _, _ = live_call
    second = np.full(16000, 0.1, dtype=np.float32)

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.messages)
            for _ in range(11):
                await client.send_audio(second)
            errors = await client.wait_for(lambda: client.of_type("error"))
            assert errors[0]["code"] == "buffer_overflow"
            levels = [b["bufferedMs"] for b in client.of_type("buffer")]
            assert max(levels) <= 10000

    run(scenario())


def test_clear_stops_the_audio_at_once_and_clears_pending_marks(
    live_call, tenant: Tenant
) -> None:
    url, _, _ = live_call
    speech = np.full(2 * 16000, 0.25, dtype=np.float32)

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.messages)
            await client.send_audio(speech[:16000])
            await client.send_audio(speech[16000:])
            await client.send_json({"type": "mark", "name": "end-of-utterance"})
            await client.wait_for(lambda: any(frame.any() for _, frame in client.audio))
            await client.send_json({"type": "clear"})
            cleared_at = time.monotonic()
            marks = await client.wait_for(lambda: client.of_type("mark"))
            assert marks == [
                {"type": "mark", "name": "end-of-utterance", "cleared": True}
            ]
            await asyncio.sleep(0.4)
            # The peer stops hearing it within a tick; its echo stops 100 ms after that.
            late = [
                frame for t, frame in client.audio if t > cleared_at + 0.100 + 0.060
            ]
            assert late and not any(frame.any() for frame in late)
            assert client.of_type("buffer")[-1]["bufferedMs"] == 0

    run(scenario())


def test_marks_arrive_when_the_audio_has_been_played_not_when_received(
    live_call, tenant: Tenant
) -> None:
    url, _, _ = live_call

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.messages)
            sent = time.monotonic()
            await client.send_audio(np.full(16000, 0.2, dtype=np.float32))
            await client.send_json({"type": "mark", "name": "one-second"})
            marks = await client.wait_for(lambda: client.of_type("mark"), timeout=4)
            arrived = next(t for t, m in client.messages if m["type"] == "mark")
            assert marks[0] == {"type": "mark", "name": "one-second", "playedMs": 1000}
            assert arrived - sent >= 0.98

    run(scenario())


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\x00\x00\x80", "invalid_pcm_frame"),
        (np.array([0.1, np.nan], dtype="<f4").tobytes(), "invalid_pcm_frame"),
        (np.array([np.inf], dtype="<f4").tobytes(), "invalid_pcm_frame"),
        (bytes(64004), "frame_too_large"),
        ("{not json", "invalid_message"),
        ('{"type": "dance"}', "invalid_message"),
        ('{"type": "mark"}', "invalid_message"),
        ("[1, 2]", "invalid_message"),
        ("[" * 2000 + "]" * 2000, "invalid_message"),  # nested past the parser
        ('{"type": "mark", "name": "' + "x" * 9000 + '"}', "message_too_large"),
    ],
)
def test_bad_frames_get_an_error_and_the_socket_stays_open(
    live_call, tenant: Tenant, payload: bytes | str, code: str
) -> None:
    url, _, _ = live_call

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.messages)
            await client.ws.send(payload)
            errors = await client.wait_for(lambda: client.of_type("error"))
            assert errors[0]["code"] == code and errors[0]["message"]
            # Still open, still working: a good frame comes back.
            probe = chirp(0.1)
            await client.send_audio(probe)
            await client.wait_for(lambda: find(client.received(), probe) >= 0)
            assert client.close_code is None

    run(scenario())


def test_a_second_socket_replaces_the_first(live_call, tenant: Tenant) -> None:
    url, _, _ = live_call

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as first:
            await first.wait_for(lambda: first.messages)
            async with MediaClient(url, tenant.test_key) as second:
                await second.wait_for(lambda: second.messages)
                await first.wait_for(lambda: first.close_code is not None)
                assert first.close_code == 4409
                assert first.of_type("error")[-1]["code"] == "replaced"
                probe = chirp(0.2)
                await second.send_audio(probe)
                await second.wait_for(lambda: find(second.received(), probe) >= 0)

    run(scenario())


def test_the_call_survives_a_dropped_socket_and_a_reconnect_resumes(
    live_call, tenant: Tenant
) -> None:
    url, _, call_id = live_call

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: len(client.audio) > 3)
        await asyncio.sleep(0.2)
        call = await asyncio.to_thread(Call.objects.get, public_id=call_id)
        assert call.state == CallState.ACTIVE
        async with MediaClient(url, tenant.test_key) as again:
            await again.wait_for(lambda: again.messages)
            assert again.messages[0][1]["type"] == "ready"
            probe = chirp(0.3)
            await again.send_audio(probe)
            await again.wait_for(lambda: find(again.received(), probe) >= 0)

    run(scenario())


def test_muting_sends_call_state_and_the_peer_hears_silence(
    live_call, tenant: Tenant
) -> None:
    url, session_id, call_id = live_call
    api = tenant.client()

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.messages)
            await asyncio.to_thread(
                api.post,
                f"/api/v1/sessions/{session_id}/calls/{call_id}/mute",
                {"muted": True},
                format="json",
            )
            states = await client.wait_for(lambda: client.of_type("call_state"))
            assert states[-1]["call"]["audioMuted"] is True
            await client.send_audio(np.full(8000, 0.3, dtype=np.float32))
            await asyncio.sleep(0.9)
            assert not client.received().any()

    run(scenario())


def test_a_peer_hang_up_sends_ended_and_closes_1000(
    engine: Engine, tenant: Tenant, asgi_server: LiveServer
) -> None:
    session_id, call_id = place(tenant.client(), to="15550000006@s.whatsapp.net")
    url = media_url(asgi_server, session_id, call_id)

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            ended = await client.wait_for(lambda: client.of_type("ended"), timeout=5)
            assert ended[0]["call"]["endReason"] == "remote_hangup"
            await client.wait_for(lambda: client.close_code is not None)
            assert client.close_code == 1000
            assert client.messages[-1][1]["type"] == "ended"

    run(scenario())


def test_an_ended_call_answers_ended_then_closes(live_call, tenant: Tenant) -> None:
    url, session_id, call_id = live_call
    tenant.client().post(f"/api/v1/sessions/{session_id}/calls/{call_id}/end")

    async def scenario() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: client.close_code is not None)
            assert [m["type"] for _, m in client.messages] == ["ended"]
            assert client.close_code == 1000

    run(scenario())


def _refused(url: str, key: str | None) -> int:
    async def attempt() -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            async with websockets.connect(url, additional_headers=headers):
                return 101
        except websockets.InvalidStatus as refusal:
            return refusal.response.status_code

    return asyncio.run(attempt())


def test_strangers_are_refused_before_accept(
    live_call, tenant: Tenant, outsider: Tenant, asgi_server: LiveServer
) -> None:
    url, session_id, _ = live_call
    assert _refused(url, None) == 403
    assert _refused(url, "sb_test_not-a-key") == 403
    assert _refused(url, outsider.test_key) == 403
    assert _refused(url, tenant.live_key) == 403
    unknown = media_url(asgi_server, session_id, "01a1fc4a-0000-7000-8000-000000000000")
    assert _refused(unknown, tenant.test_key) == 403
    account_services.api_key_revoke(api_key=ApiKey.objects.get(environment=tenant.test))
    assert _refused(url, tenant.test_key) == 403


def _login_cookie(tenant: Tenant, role: str, environment: Any) -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.models import Membership
    from accounts.selectors import DASHBOARD_ENVIRONMENT_KEY

    user = get_user_model().objects.create_user(f"{role}-user", password="pw-123456789")
    Membership.objects.create(user=user, account=tenant.account, role=role)
    browser = Client()
    browser.force_login(user)
    session = browser.session
    session[DASHBOARD_ENVIRONMENT_KEY] = str(environment.public_id)
    session.save()
    return f"sessionid={browser.cookies['sessionid'].value}"


def _open_with_cookie(url: str, cookie: str, origin: str) -> int:
    async def attempt() -> int:
        try:
            async with websockets.connect(
                url, additional_headers={"Cookie": cookie, "Origin": origin}
            ) as ws:
                ready = json.loads(await ws.recv())
                return 101 if ready["type"] == "ready" else 0
        except websockets.InvalidStatus as refusal:
            return refusal.response.status_code

    return asyncio.run(attempt())


def test_the_dashboard_console_opens_the_socket_with_its_login_session(
    live_call, tenant: Tenant, asgi_server: LiveServer
) -> None:
    url, _, _ = live_call
    same_origin = asgi_server.url
    owner = _login_cookie(tenant, "owner", tenant.test)
    assert _open_with_cookie(url, owner, same_origin) == 101
    assert _open_with_cookie(url, owner, "https://evil.example") == 403
    member = _login_cookie(tenant, "member", tenant.test)
    assert _open_with_cookie(url, member, same_origin) == 403
    looking_at_live = _login_cookie(tenant, "admin", tenant.live)
    assert _open_with_cookie(url, looking_at_live, same_origin) == 403


@pytest.mark.parametrize("after_s", [1, 0])
def test_a_call_nobody_listens_to_ends_client_gone_after_the_environments_delay(
    engine: Engine, tenant: Tenant, asgi_server: LiveServer, after_s: int
) -> None:
    """The live socket drops and nothing else consumes the call: it ends `client_gone`
    after `endCallWhenClientGoneAfterS` (1 s here); with 0 it goes on."""
    from calls.models import Call

    tenant.test.end_call_when_client_gone_after_s = after_s
    tenant.test.save()
    session_id, call_id = place(tenant.client())
    url = media_url(asgi_server, session_id, call_id)

    async def listen_then_leave() -> None:
        async with MediaClient(url, tenant.test_key) as client:
            await client.wait_for(lambda: len(client.audio) >= 5)

    run(listen_then_leave())
    left = time.monotonic()
    if after_s:
        call = wait_for(
            lambda: (
                (found := Call.objects.get(public_id=call_id)).state == "ended"
                and found
            ),
            timeout=10,
        )
        assert call.end_reason == "client_gone"
        assert time.monotonic() - left >= after_s * 0.9
    else:
        time.sleep(1.5)
        assert Call.objects.get(public_id=call_id).state == "active"
        tenant.client().post(f"/api/v1/sessions/{session_id}/calls/{call_id}/end")
