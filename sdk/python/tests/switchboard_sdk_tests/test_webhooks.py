"""Webhook endpoints through the SDK, and its verifier on real, signed deliveries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from switchboard_sdk import (
    Switchboard,
    SwitchboardError,
    WebhookVerificationError,
    WebhookVerifier,
    verify_webhook,
)
from switchboard_sdk.webhooks import sign

from events import signing
from events.tests.conftest import Receiver
from switchboard_sdk_tests.conftest import ready_session


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_a_real_delivery_verifies_and_a_tampered_one_does_not(
    sb: Switchboard, receiver: Receiver
) -> None:
    hook = sb.webhooks.create(receiver.url, ["session.created"], description="sdk")
    assert hook["secret"].startswith("whsec_") and hook["enabled"]
    session_id = sb.sessions.create("Hooked")["sessionId"]

    [request] = receiver.wait_for(1)
    verifier = WebhookVerifier(hook["secret"])
    event = verifier.verify(request.body, request.headers)
    assert event["type"] == "session.created" and event["sessionId"] == session_id
    assert event["id"] == request.headers["webhook-id"]
    assert event["data"]["session"]["displayName"] == "Hooked"
    assert (
        verify_webhook(request.body.decode(), request.headers, hook["secret"]) == event
    )

    sent_at = int(request.headers["webhook-timestamp"])
    refusals = {
        "tampered body": (request.body.replace(b"Hooked", b"Hacked"), request.headers),
        "another id": (request.body, {**request.headers, "webhook-id": "msg_other"}),
        "no signature": (request.body, {**request.headers, "webhook-signature": ""}),
        "an unknown version": (
            request.body,
            {
                **request.headers,
                "webhook-signature": request.headers["webhook-signature"].replace(
                    "v1,", "v2,"
                ),
            },
        ),
    }
    for reason, (body, headers) in refusals.items():
        with pytest.raises(WebhookVerificationError):
            verifier.verify(body, headers)
            pytest.fail(reason)
    with pytest.raises(WebhookVerificationError, match="no signature"):
        WebhookVerifier(signing.secret_generate()).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verifier.verify(request.body, request.headers, now=sent_at + 301)
    with pytest.raises(WebhookVerificationError, match="future"):
        verifier.verify(request.body, request.headers, now=sent_at - 301)
    # A wider tolerance is the receiver's choice.
    late = WebhookVerifier(hook["secret"], tolerance=3600)
    assert late.verify(request.body, request.headers, now=sent_at + 600) == event

    [delivery] = sb.webhooks.deliveries(hook["id"])
    assert (
        delivery["eventId"] == event["id"]
        and delivery["eventType"] == "session.created"
    )


def test_after_rotation_deliveries_verify_with_the_old_or_the_new_secret(
    sb: Switchboard, receiver: Receiver
) -> None:
    hook = sb.webhooks.create(receiver.url, ["connection.state"])
    rotated = sb.webhooks.rotate_secret(hook["id"])
    assert rotated["secret"] != hook["secret"] and rotated["secretRotatedAt"]
    ready_session(sb)

    request = receiver.wait_for(1)[0]
    assert len(request.headers["webhook-signature"].split()) == 2
    for secrets in (
        [hook["secret"]],
        [rotated["secret"]],
        [hook["secret"], rotated["secret"]],
    ):
        assert WebhookVerifier(secrets).verify(request.body, request.headers)[
            "type"
        ] == ("connection.state")
    with pytest.raises(WebhookVerificationError):
        WebhookVerifier([signing.secret_generate()]).verify(
            request.body, request.headers
        )


def test_the_verifier_agrees_with_switchboards_own_signing() -> None:
    secret = signing.secret_generate()
    body = json.dumps({"id": "evt_1", "type": "call.ended", "data": {}}).encode()
    now = int(time.time())
    headers = signing.signed_headers("evt_1", now, body, [secret])
    assert sign(secret, "evt_1", now, body) == headers["webhook-signature"]
    assert WebhookVerifier(secret).verify(body, headers)["type"] == "call.ended"
    # Header names are case-insensitive, as HTTP's are.
    upper = {name.upper(): value for name, value in headers.items()}
    assert WebhookVerifier(secret).verify(body, upper)["id"] == "evt_1"
    with pytest.raises(ValueError, match="whsec_"):
        WebhookVerifier("whsec_not base64!")


def test_webhook_endpoints_are_listed_changed_and_deleted(
    sb: Switchboard, receiver: Receiver
) -> None:
    made = [sb.webhooks.create(f"{receiver.url}/{n}", ["*"])["id"] for n in range(3)]
    assert [w["id"] for w in sb.webhooks.list(limit=2)] == made[::-1]
    changed = sb.webhooks.update(
        made[0], events=["call.ended"], description="calls only", enabled=False
    )
    assert changed["events"] == ["call.ended"] and changed["enabled"] is False
    assert sb.webhooks.get(made[0])["description"] == "calls only"
    assert "secret" not in sb.webhooks.get(made[0])
    assert sb.webhooks.delete(made[0])["id"] == made[0]
    with pytest.raises(SwitchboardError) as raised:
        sb.webhooks.get(made[0])
    assert raised.value.status == 404
