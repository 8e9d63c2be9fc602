"""The `twilio` dialect and the Twilio-compatible hang-up endpoint.

The reference messages below are Twilio's own examples from "Media Streams - WebSocket
Messages" (https://www.twilio.com/docs/voice/media-streams/websocket-messages), with
their placeholder SIDs. Switchboard's frames must have the same fields, nested the same
way, with values of the same JSON types.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
import pytest

from audio.codecs import mulaw_decode
from calls.models import Call, CallState
from conftest import Tenant
from streams.sids import account_sid, call_sid, stream_sid
from streams.tests.conftest import in_thread, place, streams_url
from streams.tests.receiver import Connection, Receiver

TWILIO_CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
TWILIO_START: dict[str, Any] = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"FirstName": "Jane", "LastName": "Doe"},
    },
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
}
TWILIO_MEDIA = {
    "event": "media",
    "sequenceNumber": "3",
    "media": {
        "track": "outbound",
        "chunk": "1",
        "timestamp": "5",
        "payload": "no+JhoaJjpzSHxAKBgYJDhtEopGKh4aIjZm7JhILBwYIDRg1qZSLh4aIjJevLBUMBwYH",
    },
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
}
TWILIO_MARK = {
    "event": "mark",
    "sequenceNumber": "4",
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "mark": {"name": "my label"},
}
TWILIO_STOP = {
    "event": "stop",
    "sequenceNumber": "5",
    "stop": {
        "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    },
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
}


def same_shape(ours: Any, theirs: Any, path: str = "") -> None:
    """Same keys at every level and the same JSON type for every value."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), path
        assert set(ours) == set(theirs), (path, sorted(ours), sorted(theirs))
        for key in theirs:
            if key == "customParameters":
                continue  # the customer's own keys
            same_shape(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and all(type(v) is str for v in ours), path
    else:
        assert type(ours) is type(theirs), (path, ours, theirs)


@pytest.mark.usefixtures("engine", "fast_streams")
def test_twilio_frames_match_twilios_documented_messages_field_by_field(
    tenant: Tenant,
) -> None:
    session_id, call_id, _ = place(tenant.client())
    api = tenant.client()

    async def bot(connection: Connection) -> None:
        while not connection.events("media"):
            await asyncio.sleep(0.005)
        # A bidirectional Twilio bot: a little audio, then a mark, as Twilio's docs
        # show them (streamSid included).
        sid = connection.events("start")[0]["streamSid"]
        payload = base64.b64encode(bytes([0xFF]) * 160).decode()
        await connection.send(
            {"event": "media", "streamSid": sid, "media": {"payload": payload}}
        )
        await connection.send(
            {"event": "mark", "streamSid": sid, "mark": {"name": "my label"}}
        )

    async def scenario() -> None:
        async with Receiver(bot) as rx:
            response = await in_thread(
                api.post,
                streams_url(session_id, call_id),
                {
                    "url": rx.url,
                    "type": "twoway",
                    "dialect": "twilio",
                    "customParameters": {"FirstName": "Jane", "LastName": "Doe"},
                },
                format="json",
            )
            assert response.status_code == 201, response.content
            stream = response.json()["data"]
            assert stream["format"] == "mulaw_8000"
            connection = await rx.connection()
            # The mark played, and a few chunks (one per 20 ms) arrived.
            await rx.wait_for(
                lambda: (
                    connection.events("mark") and len(connection.events("media")) >= 3
                )
            )
            await in_thread(
                api.delete, f"{streams_url(session_id, call_id)}/{stream['streamId']}"
            )
            await asyncio.wait_for(connection.closed.wait(), 3)

            messages = [m for _, m in connection.messages]
            assert messages[0] == TWILIO_CONNECTED
            start = messages[1]
            same_shape(start, TWILIO_START)
            expected_sids: dict[str, str] = {
                "accountSid": account_sid(tenant.test.public_id),
                "streamSid": stream_sid(stream["streamId"]),
                "callSid": call_sid(call_id),
            }
            assert {k: start["start"][k] for k in expected_sids} == expected_sids
            assert start["streamSid"] == expected_sids["streamSid"]
            assert start["start"]["tracks"] == ["inbound"]
            assert start["start"]["mediaFormat"] == TWILIO_START["start"]["mediaFormat"]
            assert start["start"]["customParameters"] == {
                "FirstName": "Jane",
                "LastName": "Doe",
            }
            for sid in expected_sids.values():
                assert len(sid) == 34 and sid[2:] == sid[2:].lower()

            media = [m for m in messages if m["event"] == "media"]
            for item in media:
                same_shape(item, TWILIO_MEDIA)
                assert item["media"]["track"] == "inbound"
                assert len(base64.b64decode(item["media"]["payload"])) == 160
            assert [m["media"]["chunk"] for m in media[:3]] == ["1", "2", "3"]
            assert [m["media"]["timestamp"] for m in media[:3]] == ["0", "20", "40"]
            (mark,) = [m for m in messages if m["event"] == "mark"]
            same_shape(mark, TWILIO_MARK)
            assert mark["mark"] == {"name": "my label"}
            stop = messages[-1]
            same_shape(stop, TWILIO_STOP)
            assert stop["stop"] == {
                "accountSid": expected_sids["accountSid"],
                "callSid": expected_sids["callSid"],
            }
            # Every frame after `connected` counts up from "1", with no gaps.
            numbers = [int(m["sequenceNumber"]) for m in messages[1:]]
            assert numbers == list(range(1, len(numbers) + 1))
            # The μ-law payloads decode to audio (the echo of silence is silence).
            audio = np.concatenate(
                [mulaw_decode(base64.b64decode(m["media"]["payload"])) for m in media]
            )
            assert np.abs(audio).max() < 0.01

    asyncio.run(scenario())


# ---------------------------------------------------------------- the REST endpoint


def hang_up_url(account: str, call: str) -> str:
    return f"/twilio/2010-04-01/Accounts/{account}/Calls/{call}.json"


def basic(client: Any, username: str, password: str) -> None:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")


@pytest.mark.usefixtures("engine", "fast_network")
def test_the_twilio_hang_up_endpoint_ends_the_call(tenant: Tenant) -> None:
    from rest_framework.test import APIClient

    _, call_id, _ = place(tenant.client())
    account, sid = account_sid(tenant.test.public_id), call_sid(call_id)
    twilio = APIClient()
    basic(twilio, account, tenant.test_key)

    fetched = twilio.get(hang_up_url(account, sid))
    assert fetched.status_code == 200, fetched.content
    assert fetched.json()["status"] == "in-progress"

    response = twilio.post(hang_up_url(account, sid), {"Status": "completed"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["sid"] == sid and body["account_sid"] == account
    assert body["status"] == "completed"
    assert body["uri"] == f"/2010-04-01/Accounts/{account}/Calls/{sid}.json"
    assert body["direction"] == "outbound-api" and body["to"] == place_to()
    call = Call.objects.get(public_id=call_id)
    assert call.state == CallState.ENDED and call.end_reason == "completed"
    # Hanging up an ended call again is harmless (as the API's `end`).
    assert (
        twilio.post(hang_up_url(account, sid), {"Status": "completed"}).status_code
        == 200
    )


def place_to() -> str:
    from streams.tests.conftest import ECHO

    return ECHO


@pytest.mark.usefixtures("engine", "fast_network")
def test_the_twilio_hang_up_endpoint_refuses_wrong_sids_and_keys(
    tenant: Tenant, outsider: Tenant
) -> None:
    from rest_framework.test import APIClient

    _, call_id, _ = place(tenant.client())
    account, sid = account_sid(tenant.test.public_id), call_sid(call_id)

    def attempt(username: str, password: str | None, url: str) -> Any:
        client = APIClient()
        if password is not None:
            basic(client, username, password)
        return client.post(url, {"Status": "completed"})

    url = hang_up_url(account, sid)
    live_account = account_sid(tenant.live.public_id)
    outsider_account = account_sid(outsider.test.public_id)
    refusals = [
        (attempt(account, None, url), 401),
        (attempt(account, "sb_test_not-a-key", url), 401),
        (attempt(account, tenant.live_key, url), 401),
        (attempt(live_account, tenant.live_key, url), 401),
        (attempt(outsider_account, outsider.test_key, url), 401),
        (
            attempt(live_account, tenant.live_key, hang_up_url(live_account, sid)),
            404,
        ),
        (
            attempt(
                outsider_account,
                outsider.test_key,
                hang_up_url(outsider_account, sid),
            ),
            404,
        ),
        (attempt(account, tenant.test_key, hang_up_url(account, "CA" + "0" * 32)), 404),
        (attempt(account, tenant.test_key, hang_up_url(account, "not-a-sid")), 404),
    ]
    for response, status in refusals:
        assert response.status_code == status, (response.status_code, response.content)
        body = response.json()
        assert body["status"] == status and body["code"] in (20003, 20404)
        if status == 401:
            assert response["WWW-Authenticate"].startswith("Basic")
    bad_status = APIClient()
    basic(bad_status, account, tenant.test_key)
    assert bad_status.post(url, {"Status": "in-progress"}).status_code == 400
    assert Call.objects.get(public_id=call_id).state == CallState.ACTIVE
