"""The WhatsApp Business Calling carrier against a fake Graph API and aiortc users.

No request reaches Meta: ``whatsapp_peer.FakeGraph`` answers the Graph API as Meta
documents it and posts signed webhooks to the session's real webhook URL; aiortc peers
play the WhatsApp users (real ICE, DTLS-SRTP and Opus on loopback). What the contract
suite (``test_contract.py``) does not cover: settings and secrets, the webhook's
verification and signature, duplicate and out-of-order deliveries, Meta's refusals,
malformed SDP, a peer that never completes ICE, media on a call the user placed, and
how webhooks reach the process that holds the line.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import pytest
from django.test import Client

from calls.models import Call, CallState, Session
from calls.runtime.engine import Engine
from calls.tests.media_client import MediaClient, chirp
from conftest import LiveServer, Tenant, is_problem
from events.models import Event
from tests.carriers.conftest import WhatsAppNetwork, heard_fraction, wait_for

SESSIONS = "/api/v1/sessions"

pytestmark = pytest.mark.usefixtures("fast_network")


def create(tenant: Tenant, network: WhatsAppNetwork) -> tuple[str, dict[str, str]]:
    number = network.new_number()
    response = tenant.client("live").post(
        SESSIONS,
        {"displayName": "WhatsApp", "carrier": "whatsapp", "whatsapp": number},
        format="json",
    )
    assert response.status_code == 201, response.content
    session_id = str(response.json()["data"]["sessionId"])
    network.register(session_id, number)
    return session_id, number


def session_of(tenant: Tenant, session_id: str) -> dict[str, Any]:
    return dict(tenant.client("live").get(f"{SESSIONS}/{session_id}").json()["data"])


def connected(tenant: Tenant, network: WhatsAppNetwork) -> tuple[str, dict[str, str]]:
    session_id, number = create(tenant, network)
    tenant.client("live").post(f"{SESSIONS}/{session_id}/connect")
    wait_for(lambda: session_of(tenant, session_id)["connected"], timeout=15)
    return session_id, number


def call_of(tenant: Tenant, session_id: str, call_id: str) -> dict[str, Any]:
    response = tenant.client("live").get(f"{SESSIONS}/{session_id}/calls/{call_id}")
    return dict(response.json()["data"])


def settled(tenant: Tenant, session_id: str, call_id: str, *states: str) -> Any:
    return wait_for(
        lambda: (
            (data := call_of(tenant, session_id, call_id))["state"] in states and data
        ),
        timeout=15,
    )


def webhook(session_id: str) -> str:
    return f"/carriers/whatsapp/{session_id}/webhook"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def value_of(phone_number_id: str, **content: Any) -> dict[str, Any]:
    """A ``calls`` field's value for the number (``calls=[…]`` or ``statuses=[…]``)."""
    return {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "15550100001",
            "phone_number_id": phone_number_id,
        },
        **content,
    }


def rejected_at_meta(fake: Any, wacid: str) -> bool:
    return any(
        action["body"].get("call_id") == wacid
        and action["body"].get("action") == "reject"
        for action in list(fake.actions)
    )


def envelope(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "100000000000001",
                "changes": [
                    {
                        "field": "calls",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550100001",
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


# ---------------------------------------------------------------- settings and secrets


def test_a_session_shows_its_webhook_and_verify_token_and_never_a_secret(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork
) -> None:
    session_id, number = create(tenant, whatsapp_network)
    data = session_of(tenant, session_id)
    shown = data["whatsapp"]
    assert data["carrier"] == "whatsapp"
    assert shown["phoneNumberId"] == number["phoneNumberId"]
    assert shown["hasAccessToken"] and shown["hasAppSecret"]
    assert shown["accessTokenLast4"] == number["accessToken"][-4:]
    assert shown["webhookUrl"].endswith(webhook(session_id))
    assert len(shown["verifyToken"]) >= 24
    text = json.dumps(data)
    assert number["accessToken"] not in text and number["appSecret"] not in text
    # A PATCH keeps the verify token Meta was given and the secrets not sent again.
    patched = tenant.client("live").patch(
        f"{SESSIONS}/{session_id}",
        {"whatsapp": {"graphApiBase": whatsapp_network.fake.base_url + "/"}},
        format="json",
    )
    assert patched.status_code == 200, patched.content
    again = patched.json()["data"]["whatsapp"]
    assert again["verifyToken"] == shown["verifyToken"]
    assert again["hasAccessToken"] and again["hasAppSecret"]
    assert again["graphApiBase"] == whatsapp_network.fake.base_url


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"phoneNumberId": "+1 555 0100"}, "whatsapp.phoneNumberId"),
        ({"accessToken": ""}, "whatsapp.accessToken"),
        ({"appSecret": None}, "whatsapp.appSecret"),
        ({"graphApiBase": "ftp://graph.example"}, "whatsapp.graphApiBase"),
        ({"verifyToken": "mine"}, "whatsapp.verifyToken"),
    ],
)
def test_bad_settings_are_400_naming_the_field_and_create_nothing(
    tenant: Tenant,
    whatsapp_network: WhatsAppNetwork,
    change: dict[str, Any],
    param: str,
) -> None:
    body = {**whatsapp_network.new_number(), **change}
    response = tenant.client("live").post(
        SESSIONS,
        {"displayName": "WhatsApp", "carrier": "whatsapp", "whatsapp": body},
        format="json",
    )
    assert is_problem(response, 400, "validation_error")["param"] == param
    assert not Session.objects.filter(carrier="whatsapp").exists()


def test_production_refuses_a_graph_api_base_inside_the_network(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, settings: Any
) -> None:
    settings.WHATSAPP_ALLOW_PRIVATE_GRAPH = False
    for base in ("http://graph.facebook.com/v23.0", "https://127.0.0.1/v23.0"):
        body = {**whatsapp_network.new_number(), "graphApiBase": base}
        response = tenant.client("live").post(
            SESSIONS,
            {"displayName": "WhatsApp", "carrier": "whatsapp", "whatsapp": body},
            format="json",
        )
        problem = is_problem(response, 400, "validation_error")
        assert problem["param"] == "whatsapp.graphApiBase"


def test_test_environments_offer_no_whatsapp(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork
) -> None:
    response = tenant.client("test").post(
        SESSIONS,
        {
            "displayName": "WhatsApp",
            "carrier": "whatsapp",
            "whatsapp": whatsapp_network.new_number(),
        },
        format="json",
    )
    assert is_problem(response, 400, "carrier_not_available")["param"] == "carrier"


# ---------------------------------------------------------------- connecting the line


def test_connect_reads_the_number_and_the_line_gets_its_address(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    session_id, number = connected(tenant, whatsapp_network)
    data = session_of(tenant, session_id)
    assert data["connectionState"] == "connected" and data["lastError"] is None
    assert data["phoneJid"] == "+1555010" + number["phoneNumberId"][-4:]
    reads = [
        request
        for request in whatsapp_network.fake.requests
        if request["method"] == "GET" and number["phoneNumberId"] in request["path"]
    ]
    assert reads and reads[-1]["authorization"] == f"Bearer {number['accessToken']}"


def test_a_refused_token_is_an_error_with_metas_code(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    session_id, _number = create(tenant, whatsapp_network)
    tenant.client("live").patch(
        f"{SESSIONS}/{session_id}",
        {"whatsapp": {"accessToken": "EAAG-not-the-token-Meta-knows"}},
        format="json",
    )
    tenant.client("live").post(f"{SESSIONS}/{session_id}/connect")
    data = wait_for(
        lambda: (
            (found := session_of(tenant, session_id))["connectionState"] == "error"
            and found
        ),
        timeout=15,
    )
    assert data["lastError"]["code"] == "190"
    assert "OAuth" in data["lastError"]["message"]
    assert "not-the-token" not in json.dumps(data)


# ---------------------------------------------------------------- the webhook


def test_the_verification_challenge_needs_the_sessions_verify_token(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork
) -> None:
    session_id, _ = create(tenant, whatsapp_network)
    token = session_of(tenant, session_id)["whatsapp"]["verifyToken"]
    client = Client()
    ok = client.get(
        webhook(session_id),
        {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158"},
    )
    assert ok.status_code == 200 and ok.content == b"1158"
    wrong = client.get(
        webhook(session_id),
        {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
    )
    is_problem(wrong, 403, "verify_token_mismatch")
    unknown = client.get(
        webhook("0190a000-0000-7000-8000-000000000000"),
        {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1"},
    )
    is_problem(unknown, 404, "session_not_found")


def test_a_bad_signature_is_401_and_changes_nothing(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    session_id, number = connected(tenant, whatsapp_network)
    events_before = Event.objects.count()
    offer = envelope(
        number["phoneNumberId"],
        {
            "calls": [
                {
                    "id": "wacid.forged",
                    "from": "4915112345678",
                    "to": "15550100001",
                    "event": "connect",
                    "timestamp": str(int(time.time())),
                    "direction": "USER_INITIATED",
                    "session": {"sdp_type": "offer", "sdp": "v=0\r\n"},
                }
            ]
        },
    )
    body = json.dumps(offer).encode()
    client = Client()
    for header in (
        None,
        "sha256=" + "0" * 64,
        sign("not-the-app-secret", body),
        sign(number["appSecret"], body + b" "),
        "sha1=" + hashlib.sha1(body, usedforsecurity=False).hexdigest(),
    ):
        headers = {} if header is None else {"X-Hub-Signature-256": header}
        response = client.post(
            webhook(session_id), body, content_type="application/json", headers=headers
        )
        is_problem(response, 401, "signature_invalid")
    unknown = client.post(
        webhook("0190a000-0000-7000-8000-000000000000"),
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=sign(number["appSecret"], body),
    )
    is_problem(unknown, 404, "session_not_found")
    time.sleep(0.3)
    assert not Call.objects.exists()
    assert Event.objects.count() == events_before


def test_signed_json_that_is_not_json_is_400(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork
) -> None:
    session_id, number = create(tenant, whatsapp_network)
    body = b'{"object": "whatsapp_business_account", "entry": ['
    response = Client().post(
        webhook(session_id),
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=sign(number["appSecret"], body),
    )
    is_problem(response, 400, "invalid_json")


def test_a_replayed_connect_rings_once(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    fake = whatsapp_network.fake
    session_id, _number = connected(tenant, whatsapp_network)
    call_id = whatsapp_network.call_in(session_id, "echo")
    call = Call.objects.get(public_id=call_id)
    # Meta delivers the same signed body again (a retry), twice.
    raw, headers = next(
        (raw, headers)
        for raw, headers in reversed(fake.deliveries)
        if call.carrier_ref.encode() in raw and b'"connect"' in raw
    )
    for _ in range(2):
        again = Client().post(
            webhook(session_id),
            raw,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=headers["X-Hub-Signature-256"],
        )
        assert again.status_code == 200
    time.sleep(0.5)
    assert Call.objects.filter(session__public_id=session_id).count() == 1
    assert Event.objects.filter(type="call.incoming").count() == 1
    assert call_of(tenant, session_id, call_id)["state"] == "ringing"


def test_a_terminate_before_its_connect_never_rings(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    fake = whatsapp_network.fake
    _session_id, number = connected(tenant, whatsapp_network)
    common = {
        "id": "wacid.late-connect",
        "from": "4915112345678",
        "to": "15550100001",
        "timestamp": str(int(time.time())),
        "direction": "USER_INITIATED",
    }
    ended = fake.post_webhook(
        number["phoneNumberId"],
        value_of(
            number["phoneNumberId"],
            calls=[{**common, "event": "terminate", "status": "FAILED"}],
        ),
    )
    assert ended.status_code == 200
    wacid = fake.call_in(number["phoneNumberId"], "4915112345678")  # a real offer
    raw = wait_for(
        lambda: next(
            (body for body, _ in list(fake.deliveries) if wacid.encode() in body), None
        ),
        timeout=10,
    )
    late = json.loads(raw)
    late["entry"][0]["changes"][0]["value"]["calls"][0]["id"] = "wacid.late-connect"
    response = fake.post_webhook(
        number["phoneNumberId"], late["entry"][0]["changes"][0]["value"]
    )
    assert response.status_code == 200
    wait_for(lambda: Call.objects.filter(carrier_ref=wacid).exists(), timeout=10)
    time.sleep(0.5)
    assert not Call.objects.filter(carrier_ref="wacid.late-connect").exists()


def test_a_malformed_offer_is_refused_at_meta_and_rings_nothing(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    fake = whatsapp_network.fake
    session_id, number = connected(tenant, whatsapp_network)
    for wacid, sdp in (
        ("wacid.garbage-sdp", "this is not SDP"),
        ("wacid.video-only", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"),
    ):
        response = fake.post_webhook(
            number["phoneNumberId"],
            value_of(
                number["phoneNumberId"],
                calls=[
                    {
                        "id": wacid,
                        "from": "4915112345678",
                        "to": "15550100001",
                        "event": "connect",
                        "timestamp": str(int(time.time())),
                        "direction": "USER_INITIATED",
                        "session": {"sdp_type": "offer", "sdp": sdp},
                    }
                ],
            ),
        )
        assert response.status_code == 200
        wait_for(partial(rejected_at_meta, fake, wacid), timeout=10)
    assert not Call.objects.exists()
    # The line still takes a good call.
    call_id = whatsapp_network.call_in(session_id, "echo")
    assert call_of(tenant, session_id, call_id)["state"] == "ringing"


def test_webhooks_for_a_line_held_elsewhere_go_to_its_holder(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    """The endpoint answers in any process and hands the items to the line's holder
    over the channel layer: here a holder that is not this process's engine."""
    from asgiref.sync import async_to_sync
    from channels import DEFAULT_CHANNEL_LAYER
    from channels.layers import channel_layers, get_channel_layer
    from django.conf import settings as django_settings

    from calls.carriers.whatsapp.webhook import dispatch
    from calls.models import EngineHost

    session_id, number = create(tenant, whatsapp_network)
    layer = get_channel_layer()
    # The holder's side, as another process has it: with Redis, a layer instance of its
    # own (this process's engine already receives on the default one).
    holder_layer = (
        channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        if django_settings.REDIS_URL
        else layer
    )
    channel = async_to_sync(holder_layer.new_channel)()
    EngineHost.objects.create(
        host_id="elsewhere:1:abc", channel_name=channel, hostname="elsewhere", pid=1
    )
    Session.objects.filter(public_id=session_id).update(
        line_holder="elsewhere:1:abc", active=True
    )
    session = Session.objects.get(public_id=session_id)
    items = [{"kind": "status", "id": "wacid.x", "status": "RINGING"}]
    assert dispatch(session, items)
    message = async_to_sync(holder_layer.receive)(channel)
    assert message == {
        "type": "whatsapp.webhook",
        "session_id": session_id,
        "items": items,
    }
    # No live holder at all: Meta is told to retry (503), nothing is written.
    Session.objects.filter(public_id=session_id).update(line_holder="")
    body = json.dumps(
        envelope(number["phoneNumberId"], {"statuses": [items[0] | {"type": "call"}]})
    ).encode()
    response = Client().post(
        webhook(session_id),
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=sign(number["appSecret"], body),
    )
    is_problem(response, 503, "line_not_held")


# ---------------------------------------------------------------- calls


def test_meta_refusing_a_call_ends_it_failed_with_metas_code(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    session_id, _ = connected(tenant, whatsapp_network)
    placed = tenant.client("live").post(
        f"{SESSIONS}/{session_id}/calls", {"to": "+1 555 000 0007"}, format="json"
    )
    assert placed.status_code == 201, placed.content
    data = settled(tenant, session_id, placed.json()["data"]["callId"], "ended")
    assert data["endReason"] == "failed"
    assert data["endDetail"]["carrier"] == "whatsapp"
    assert data["endDetail"]["code"] == "138006"
    assert "permission" in data["endDetail"]["message"]


def test_a_token_meta_no_longer_accepts_fails_the_call_with_190(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    session_id, number = connected(tenant, whatsapp_network)
    whatsapp_network.fake.add_number(
        number["phoneNumberId"],
        access_token="EAAG-rotated-at-meta",
        app_secret=number["appSecret"],
        display_phone_number="15550100001",
        webhook_url=f"{whatsapp_network.server.url}{webhook(session_id)}",
    )
    placed = tenant.client("live").post(
        f"{SESSIONS}/{session_id}/calls", {"to": "+15550000001"}, format="json"
    )
    data = settled(tenant, session_id, placed.json()["data"]["callId"], "ended")
    assert (data["endReason"], data["endDetail"]["code"]) == ("failed", "190")


def test_a_user_whose_network_never_connects_fails_the_call_and_meta_hears(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine, settings: Any
) -> None:
    settings.WHATSAPP_CONNECT_TIMEOUT_S = 2.0
    session_id, _ = connected(tenant, whatsapp_network)
    placed = tenant.client("live").post(
        f"{SESSIONS}/{session_id}/calls", {"to": "+15550000008"}, format="json"
    )
    call_id = placed.json()["data"]["callId"]
    settled(tenant, session_id, call_id, "active")
    data = settled(tenant, session_id, call_id, "ended")
    assert data["endReason"] == "failed"
    assert data["endDetail"]["code"] == "ice_failed"
    wacid = Call.objects.get(public_id=call_id).carrier_ref
    whatsapp_network.fake.wait_for_action(wacid, "terminate")


def test_an_accepted_call_pre_accepts_then_accepts_and_echoes_the_callers_audio(
    tenant: Tenant,
    whatsapp_network: WhatsAppNetwork,
    engine: Engine,
    asgi_server: LiveServer,
) -> None:
    """A user calls in; accepting answers their offer through ``pre_accept`` and
    ``accept``, and what the live socket sends reaches the user and comes back."""
    fake = whatsapp_network.fake
    session_id, _ = connected(tenant, whatsapp_network)
    call_id = whatsapp_network.call_in(session_id, "echo")
    wacid = Call.objects.get(public_id=call_id).carrier_ref
    accepted = tenant.client("live").post(
        f"{SESSIONS}/{session_id}/calls/{call_id}/accept"
    )
    assert accepted.status_code == 200, accepted.content
    assert fake.actions_of(wacid)[:2] == ["pre_accept", "accept"]
    answer = fake.wait_for_action(wacid, "accept")["session"]
    assert answer["sdp_type"] == "answer" and "opus" in answer["sdp"].lower()
    wait_for(lambda: fake.users[wacid].connected, timeout=15)

    url = f"{asgi_server.ws_url}{SESSIONS}/{session_id}/calls/{call_id}/media"
    signal = chirp(6.0, amplitude=0.4)

    async def scenario() -> np.ndarray:
        async with MediaClient(url, tenant.live_key) as client:
            await client.wait_for(lambda: client.messages)
            await client.stream(signal)
            await asyncio.sleep(1.0)
            return client.received()

    received = asyncio.run(scenario())
    assert heard_fraction(received, signal) >= 0.9
    heard = fake.users[wacid].heard()
    assert len(heard) >= 48_000 * 5  # the user heard seconds of audio at 48 kHz
    assert float(np.sqrt(np.mean(heard**2))) > 0.05
    ended = tenant.client("live").post(f"{SESSIONS}/{session_id}/calls/{call_id}/end")
    assert ended.json()["data"]["endReason"] == "completed"
    fake.wait_for_action(wacid, "terminate")


def test_status_webhooks_delivered_twice_change_nothing(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    fake = whatsapp_network.fake
    session_id, number = connected(tenant, whatsapp_network)
    placed = tenant.client("live").post(
        f"{SESSIONS}/{session_id}/calls", {"to": "+15550000001"}, format="json"
    )
    call_id = placed.json()["data"]["callId"]
    settled(tenant, session_id, call_id, "active")
    wacid = Call.objects.get(public_id=call_id).carrier_ref
    for status in ("RINGING", "ACCEPTED", "REJECTED"):
        response = fake.post_webhook(
            number["phoneNumberId"],
            value_of(
                number["phoneNumberId"],
                statuses=[
                    {
                        "id": wacid,
                        "timestamp": str(int(time.time())),
                        "type": "call",
                        "status": status,
                        "recipient_id": "15550000001",
                    }
                ],
            ),
        )
        assert response.status_code == 200
    time.sleep(0.5)
    assert Call.objects.get(public_id=call_id).state == CallState.ACTIVE
    states = [
        event.data["call"]["state"]
        for event in Event.objects.filter(type="call.state").order_by("pk")
        if event.data["callId"] == call_id
    ]
    assert states == ["initiating", "ringing", "active"]
    tenant.client("live").post(f"{SESSIONS}/{session_id}/calls/{call_id}/end")


def test_a_terminate_with_errors_before_the_answer_is_a_failure_with_metas_code(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    fake = whatsapp_network.fake
    session_id, number = connected(tenant, whatsapp_network)
    call_id = whatsapp_network.call_in(session_id, "echo")
    wacid = Call.objects.get(public_id=call_id).carrier_ref
    fake.post_webhook(
        number["phoneNumberId"],
        value_of(
            number["phoneNumberId"],
            calls=[
                {
                    "id": wacid,
                    "from": "4915112345678",
                    "to": "15550100001",
                    "event": "terminate",
                    "timestamp": str(int(time.time())),
                    "direction": "USER_INITIATED",
                    "status": "FAILED",
                    "errors": [
                        {"code": 131000, "title": "Something went wrong", "message": ""}
                    ],
                }
            ],
        ),
    )
    data = settled(tenant, session_id, call_id, "ended")
    assert data["endReason"] == "failed"
    assert data["endDetail"] == {
        "carrier": "whatsapp",
        "code": "131000",
        "message": "Something went wrong",
    }


@pytest.fixture
def tasks_in_process() -> Iterator[None]:
    """Recordings are finalised in this process (no Celery worker runs here)."""
    from config.celery_app import app as celery_app

    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.mark.usefixtures("tasks_in_process")
def test_a_whatsapp_call_is_recorded_and_muted_like_any_call(
    tenant: Tenant,
    whatsapp_network: WhatsAppNetwork,
    engine: Engine,
    asgi_server: LiveServer,
) -> None:
    """The three recordings hold what was said each way (the inbound one is the
    user's echo of the sweep), and while muted the user hears silence."""
    import io

    import soundfile
    from django.core.files.storage import default_storage

    from recordings.models import Recording

    fake = whatsapp_network.fake
    session_id, _ = connected(tenant, whatsapp_network)
    placed = tenant.client("live").post(
        f"{SESSIONS}/{session_id}/calls",
        {"to": "+15550000001", "record": True},
        format="json",
    )
    call_id = placed.json()["data"]["callId"]
    settled(tenant, session_id, call_id, "active")
    wacid = Call.objects.get(public_id=call_id).carrier_ref
    wait_for(lambda: fake.users[wacid].connected, timeout=15)
    url = f"{asgi_server.ws_url}{SESSIONS}/{session_id}/calls/{call_id}/media"
    signal = chirp(4.0, amplitude=0.4)
    mute_url = f"{SESSIONS}/{session_id}/calls/{call_id}/mute"

    async def scenario() -> tuple[int, int]:
        async with MediaClient(url, tenant.live_key) as client:
            await client.wait_for(lambda: client.messages)
            await client.stream(signal)
            await asyncio.sleep(1.0)
            muted = await asyncio.to_thread(
                tenant.client("live").post, mute_url, {"muted": True}, format="json"
            )
            assert muted.json()["data"]["audioMuted"] is True
            heard_before = len(fake.users[wacid].heard())
            await client.stream(signal[: 16_000 * 2])
            await asyncio.sleep(0.5)
            return heard_before, len(fake.users[wacid].heard())

    before, after = asyncio.run(scenario())
    # What the user heard after the mute took hold (a little later: queued frames).
    tail = fake.users[wacid].heard()[before + 48_000 // 2 : after]
    assert len(tail) > 48_000
    assert float(np.max(np.abs(tail))) < 0.01
    tenant.client("live").post(f"{SESSIONS}/{session_id}/calls/{call_id}/end")
    recordings = wait_for(
        lambda: (
            (
                found := {
                    r.kind: r for r in Recording.objects.filter(call__public_id=call_id)
                }
            )
            and len(found) == 3
            and found
        ),
        timeout=15,
    )
    assert all(r.duration_ms >= 4000 for r in recordings.values())
    with default_storage.open(recordings["inbound"].file_name, "rb") as stored:
        inbound, rate = soundfile.read(io.BytesIO(stored.read()), dtype="float32")
    assert rate == 16_000
    assert heard_fraction(inbound, signal) >= 0.9


def test_meta_refusing_the_accept_ends_the_call_failed_with_its_code(
    tenant: Tenant, whatsapp_network: WhatsAppNetwork, engine: Engine
) -> None:
    """The token was revoked at Meta after the line came up: accepting a call gets
    Meta's 401 (code 190), and the call ends ``failed`` with it rather than hanging."""
    session_id, number = connected(tenant, whatsapp_network)
    call_id = whatsapp_network.call_in(session_id, "echo")
    whatsapp_network.fake.add_number(
        number["phoneNumberId"],
        access_token="EAAG-revoked-and-replaced",
        app_secret=number["appSecret"],
        display_phone_number="15550100001",
        webhook_url=f"{whatsapp_network.server.url}{webhook(session_id)}",
    )
    tenant.client("live").post(f"{SESSIONS}/{session_id}/calls/{call_id}/accept")
    data = settled(tenant, session_id, call_id, "ended")
    assert data["endReason"] == "failed"
    assert data["endDetail"]["code"] == "190"
    wait_for(lambda: call_id not in engine.runtimes)
