"""The streams API: validation, limits, tenancy, and streams given at call start/accept."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from calls.models import Call, CallState
from calls.tests.conftest import wait_for
from conftest import Tenant, is_problem
from streams.models import Stream, StreamState
from streams.tasks import callback_secret
from streams.tests.conftest import in_thread, paired_session, place, streams_url
from streams.tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("engine", "fast_streams")

URL = "wss://bot.example.com/stream"


def post_stream(client: Any, session_id: str, call_id: str, **body: Any) -> Any:
    return client.post(streams_url(session_id, call_id), body, format="json")


@pytest.fixture
def live_call(tenant: Tenant) -> tuple[str, str]:
    session_id, call_id, _ = place(tenant.client())
    return session_id, call_id


@pytest.fixture
def no_connect(settings: Any) -> Any:
    """Streams to unreachable test URLs stay quiet: one quick attempt, then failed."""
    settings.STREAM_CONNECT_ATTEMPTS = 1
    settings.STREAM_CONNECT_TIMEOUT_S = 0.2
    return settings


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "url"),
        ({"url": "https://bot.example.com/stream"}, "url"),
        ({"url": "wss://"}, "url"),
        ({"url": URL, "type": "threeway"}, "type"),
        ({"url": URL, "channel": "sideways"}, "channel"),
        ({"url": URL, "type": "twoway", "channel": "outbound"}, "channel"),
        ({"url": URL, "type": "twoway", "channel": "both"}, "channel"),
        ({"url": URL, "format": "mp3_44100"}, "format"),
        ({"url": URL, "dialect": "plivo"}, "dialect"),
        ({"url": URL, "onDisconnect": "panic"}, "onDisconnect"),
        ({"url": URL, "statusCallback": "ftp://example.com/x"}, "statusCallback"),
        ({"url": URL, "headers": {"Host": "evil"}}, "headers"),
        ({"url": URL, "headers": {"Sec-WebSocket-Key": "x"}}, "headers"),
        ({"url": URL, "headers": {"X-Switchboard-Signature": "x"}}, "headers"),
        ({"url": URL, "headers": {"X-Ok": "a\r\nInjected: 1"}}, "headers"),
        ({"url": URL, "headers": {"bad name": "x"}}, "headers"),
        ({"url": URL, "headers": ["X-Ok"]}, "headers"),
        ({"url": URL, "customParameters": {"nested": {"a": 1}}}, "customParameters"),
        ({"url": URL, "onDisconect": "hangup"}, "onDisconect"),
    ],
)
def test_invalid_options_are_problems_naming_the_field(
    tenant: Tenant, live_call: tuple[str, str], body: dict[str, Any], param: str
) -> None:
    response = post_stream(tenant.client(), *live_call, **body)
    problem = is_problem(response, 400, "validation_error")
    assert problem["param"] == param, problem
    assert not Stream.objects.exists()


def test_streams_on_call_start_are_validated_before_the_call_is_placed(
    tenant: Tenant,
) -> None:
    client = tenant.client()
    session_id = paired_session(client)
    calls = f"/api/v1/sessions/{session_id}/calls"
    bad = client.post(
        calls,
        {"to": "15550000001@s.whatsapp.net", "streams": [{"url": URL}, {"url": "x"}]},
        format="json",
    )
    assert is_problem(bad, 400, "validation_error")["param"] == "streams[1].url"
    too_many = client.post(
        calls,
        {
            "to": "15550000001@s.whatsapp.net",
            "streams": [{"url": URL, "type": "twoway"}] * 2,
        },
        format="json",
    )
    is_problem(too_many, 409, "stream_limit")
    assert not Call.objects.exists()


@pytest.fixture
def black_hole(settings: Any) -> Iterator[str]:
    """A WebSocket URL whose server takes the connection and never answers."""
    settings.STREAM_CONNECT_TIMEOUT_S = 30.0
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/silent"


def test_at_most_one_twoway_and_five_oneway_live_streams_per_call(
    tenant: Tenant, live_call: tuple[str, str], black_hole: str
) -> None:
    client = tenant.client()
    url = streams_url(*live_call)
    twoway = post_stream(client, *live_call, url=black_hole, type="twoway")
    assert twoway.status_code == 201
    problem = is_problem(
        post_stream(client, *live_call, url=black_hole, type="twoway"),
        409,
        "stream_limit",
    )
    assert "1 twoway and 5 oneway" in problem["detail"]
    for _ in range(5):
        assert post_stream(client, *live_call, url=black_hole).status_code == 201
    is_problem(post_stream(client, *live_call, url=black_hole), 409, "stream_limit")
    assert Stream.objects.filter(state__in=["pending", "connecting"]).count() == 6
    # A stopped stream no longer counts.
    stopped = client.delete(f"{url}/{twoway.json()['data']['streamId']}")
    assert stopped.json()["data"]["state"] == "stopped"
    assert (
        post_stream(client, *live_call, url=black_hole, type="twoway").status_code
        == 201
    )


def test_headers_and_custom_parameters_keep_the_customers_keys_verbatim(
    tenant: Tenant,
    live_call: tuple[str, str],
    no_connect: Any,
    hooks_server: tuple[str, list[Any]],
) -> None:
    hook_url, _ = hooks_server
    headers = {"X-Api-Key": "k1", "x_snake_header": "v", "Authorization": "Bearer t"}
    params = {"FirstName": "Jane", "snake_case": "s", "camelCase": 1, "UPPER": True}
    response = post_stream(
        tenant.client(),
        *live_call,
        url=URL,
        headers=headers,
        customParameters=params,
        statusCallback=hook_url,
        dialect="twilio",
    )
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["headers"] == headers and data["customParameters"] == params
    assert data["statusCallback"] == hook_url
    assert data["format"] == "mulaw_8000" and data["dialect"] == "twilio"
    assert data["type"] == "oneway" and data["channel"] == "inbound"
    assert data["onDisconnect"] == "continue"
    stream = Stream.objects.get(public_id=data["streamId"])
    assert stream.headers == headers and stream.custom_parameters == params
    fetched = tenant.client().get(f"{streams_url(*live_call)}/{data['streamId']}")
    assert fetched.json()["data"]["customParameters"] == params


def test_the_wavix_dialect_defaults_to_pcm16_at_16_khz_and_lists_newest_first(
    tenant: Tenant, live_call: tuple[str, str], no_connect: Any
) -> None:
    client = tenant.client()
    first = post_stream(client, *live_call, url=URL).json()["data"]
    second = post_stream(client, *live_call, url=URL, format="f32_16000").json()["data"]
    assert first["format"] == "pcm16_16000" and first["dialect"] == "wavix"
    listed = client.get(f"{streams_url(*live_call)}?limit=1").json()
    assert [s["streamId"] for s in listed["data"]] == [second["streamId"]]
    rest = client.get(f"{streams_url(*live_call)}?cursor={listed['nextCursor']}").json()
    assert [s["streamId"] for s in rest["data"]] == [first["streamId"]]
    for key in ("framesSent", "framesReceived", "framesDropped", "lastError", "state"):
        assert key in first


def test_a_stream_on_an_ended_call_is_refused(
    tenant: Tenant, live_call: tuple[str, str]
) -> None:
    session_id, call_id = live_call
    tenant.client().post(f"/api/v1/sessions/{session_id}/calls/{call_id}/end")
    is_problem(
        post_stream(tenant.client(), session_id, call_id, url=URL),
        409,
        "call_not_active",
    )


def test_idempotency_key_replays_a_stream_creation(
    tenant: Tenant, live_call: tuple[str, str], no_connect: Any
) -> None:
    client = tenant.client()
    url = streams_url(*live_call)
    first = client.post(url, {"url": URL}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(url, {"url": URL}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.json()["data"]["streamId"] == first.json()["data"]["streamId"]
    assert Stream.objects.count() == 1


def test_outsiders_and_the_other_environment_get_404_on_every_stream_route(
    tenant: Tenant, outsider: Tenant, live_call: tuple[str, str], no_connect: Any
) -> None:
    session_id, call_id = live_call
    stream_id = post_stream(tenant.client(), *live_call, url=URL).json()["data"][
        "streamId"
    ]
    base = streams_url(session_id, call_id)
    for stranger in (
        outsider.client("test"),
        outsider.client("live"),
        tenant.client("live"),
    ):
        is_problem(stranger.get(base), 404)
        is_problem(stranger.post(base, {"url": URL}, format="json"), 404)
        is_problem(stranger.get(f"{base}/{stream_id}"), 404)
        is_problem(stranger.delete(f"{base}/{stream_id}"), 404)
    is_problem(tenant.client().get(f"{base}/not-a-uuid"), 404, "stream_not_found")
    # A stream of another call of the same tenant is not found under this call.
    _, other_call, _ = place(tenant.client())
    is_problem(
        tenant.client().get(f"{streams_url(session_id, other_call)}/{stream_id}"), 404
    )
    assert Stream.objects.count() == 1


# ---------------------------------------------------------------- at call start and accept


def test_streams_given_at_call_start_begin_when_the_call_is_answered(
    tenant: Tenant,
) -> None:
    async def scenario() -> None:
        async with Receiver() as rx:
            _, call_id, data = await in_thread(
                place,
                tenant.client(),
                streams=[
                    {"url": rx.url, "channel": "both", "customParameters": {"k": "v"}}
                ],
            )
            (stream,) = data["streams"]
            assert stream["customParameters"] == {"k": "v"}
            connection = await rx.connection()
            await rx.wait_for(lambda: connection.events("media"))
            start = connection.events("start")[0]
            assert start["call_id"] == call_id
            assert start["stream_id"] == stream["streamId"]
            await in_thread(
                wait_for,
                lambda: Stream.objects.filter(
                    public_id=stream["streamId"], state=StreamState.STREAMING
                ).exists(),
            )

    asyncio.run(scenario())


def test_streams_given_on_accept_start_at_once(tenant: Tenant) -> None:
    client = tenant.client()
    session_id = paired_session(client)
    incoming = client.post(
        f"/api/v1/test-helpers/sessions/{session_id}/incoming-calls",
        {"from": "15550009999@s.whatsapp.net"},
        format="json",
    )
    call_id = incoming.json()["data"]["callId"]
    accept = f"/api/v1/sessions/{session_id}/calls/{call_id}/accept"

    async def scenario() -> None:
        async with Receiver() as rx:
            bad = await in_thread(
                client.post,
                accept,
                {"streams": [{"url": rx.url, "type": "twoway", "channel": "both"}]},
                format="json",
            )
            assert is_problem(bad, 400)["param"] == "streams[0].channel"
            response = await in_thread(
                client.post,
                accept,
                {"streams": [{"url": rx.url, "type": "twoway", "dialect": "twilio"}]},
                format="json",
            )
            assert response.status_code == 200, response.content
            body = response.json()["data"]
            assert body["state"] == "active"
            (stream,) = body["streams"]
            connection = await rx.connection()
            await rx.wait_for(lambda: connection.events("media"))
            assert connection.events("start")[0]["start"]["callSid"].startswith("CA")
            assert stream["dialect"] == "twilio"

    asyncio.run(scenario())
    # Accepting without a body still works.
    other = client.post(
        f"/api/v1/test-helpers/sessions/{session_id}/incoming-calls",
        {"from": "15550008888@s.whatsapp.net"},
        format="json",
    ).json()["data"]["callId"]
    plain = client.post(f"/api/v1/sessions/{session_id}/calls/{other}/accept")
    assert plain.status_code == 200 and "streams" not in plain.json()["data"]


def test_streams_on_a_call_that_fails_at_once_are_recorded_stopped(
    tenant: Tenant, no_connect: Any
) -> None:
    client = tenant.client()
    session_id = paired_session(client)
    response = client.post(
        f"/api/v1/sessions/{session_id}/calls",
        {"to": "15550000003@s.whatsapp.net", "streams": [{"url": URL}]},
        format="json",
    )
    assert response.status_code == 201
    (stream,) = response.json()["data"]["streams"]
    call_id = response.json()["data"]["callId"]
    wait_for(lambda: Call.objects.get(public_id=call_id).state == CallState.ENDED)
    row = wait_for(
        lambda: Stream.objects.filter(
            public_id=stream["streamId"], state=StreamState.STOPPED
        ).first()
    )
    assert row.reason == "call_ended" and row.frames_sent == 0


# ---------------------------------------------------------------- status callbacks


class _Hooks(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hooks_server() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (_Hooks,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stream-status", received
    server.shutdown()


def test_status_callbacks_receive_the_events_signed_like_webhooks(
    tenant: Tenant,
    live_call: tuple[str, str],
    hooks_server: tuple[str, list[tuple[dict[str, str], bytes]]],
    callbacks_in_process: None,
) -> None:
    hook_url, received = hooks_server

    async def scenario() -> str:
        async with Receiver() as rx:
            response = await in_thread(
                tenant.client().post,
                streams_url(*live_call),
                {"url": rx.url, "statusCallback": hook_url},
                format="json",
            )
            stream_id = response.json()["data"]["streamId"]
            connection = await rx.connection()
            await rx.wait_for(lambda: connection.events("media"))
            await in_thread(
                tenant.client().delete, f"{streams_url(*live_call)}/{stream_id}"
            )
            return stream_id

    stream_id = asyncio.run(scenario())
    wait_for(lambda: len(received) >= 2)
    verifier = Webhook(callback_secret(tenant.test.signing_secret))
    envelopes = []
    for headers, body in received:
        lowered = {k.lower(): v for k, v in headers.items()}
        envelopes.append(verifier.verify(body, lowered))
        assert abs(int(lowered["webhook-timestamp"]) - time.time()) < 60
    assert [e["type"] for e in envelopes] == [
        "call.stream.started",
        "call.stream.stopped",
    ]
    assert all(e["data"]["streamId"] == stream_id for e in envelopes)
    assert envelopes[1]["data"]["reason"] == "requested"
    forged = dict(received[0][0])
    tampered = json.loads(received[0][1])
    tampered["data"]["state"] = "failed"
    with pytest.raises(Exception):  # noqa: B017
        verifier.verify(json.dumps(tampered), {k.lower(): v for k, v in forged.items()})
    assert base64.b64decode(callback_secret("abc").removeprefix("whsec_")) == b"abc"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"url": "ws://127.0.0.1:8765/bot"}, "url"),
        ({"url": "wss://localhost/bot"}, "url"),
        ({"url": "ws://10.1.2.3/bot"}, "url"),
        ({"url": "ws://[::1]:9000/bot"}, "url"),
        ({"url": "wss://169.254.169.254/latest"}, "url"),
        (
            {"url": "wss://8.8.8.8/bot", "statusCallback": "http://192.168.1.5/x"},
            "statusCallback",
        ),
    ],
)
def test_production_refuses_private_and_loopback_targets(
    tenant: Tenant, live_call: tuple[str, str], settings: Any, body: dict, param: str
) -> None:
    settings.STREAM_ALLOW_PRIVATE = False
    problem = is_problem(post_stream(tenant.client(), *live_call, **body), 400)
    assert problem["param"] == param and "public addresses" in problem["detail"]
