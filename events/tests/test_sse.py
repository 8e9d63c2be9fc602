"""Server-Sent Events over real HTTP against the ASGI server: order, resume, heartbeat."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from calls.models import Call
from calls.tests.conftest import wait_for
from conftest import LiveServer, Tenant
from events.models import Event
from events.tests.conftest import API, SseClient, SseMessage

ECHO = "15550000001@s.whatsapp.net"

pytestmark = pytest.mark.usefixtures("engine", "fast_network")

OpenStream = Callable[..., SseClient]
T = TypeVar("T")


def ready_session(client: APIClient) -> str:
    response = client.post(f"{API}/sessions", {"displayName": "Line"}, format="json")
    assert response.status_code == 201, response.content
    session_id = response.json()["data"]["sessionId"]
    assert client.post(f"{API}/sessions/{session_id}/connect").status_code == 200
    scanned = client.post(f"{API}/test-helpers/sessions/{session_id}/scan")
    assert scanned.status_code == 200, scanned.content
    return session_id


def new_session(client: APIClient, name: str) -> str:
    response = client.post(f"{API}/sessions", {"displayName": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]["sessionId"]


def logged(**filters: Any) -> list[Event]:
    return list(Event.objects.filter(**filters).order_by("pk"))


def ids(messages: list[SseMessage]) -> list[str | None]:
    return [message.id for message in messages]


def through_first(items: list[T], is_last: Callable[[T], bool]) -> list[T]:
    """``items`` up to and including the first for which ``is_last`` holds."""
    last = next(i for i, item in enumerate(items) if is_last(item))
    return items[: last + 1]


def has(event_id: str) -> Callable[[list[SseMessage]], bool]:
    return lambda messages: any(message.id == event_id for message in messages)


def test_a_calls_lifecycle_arrives_in_order(
    asgi_server: LiveServer, tenant: Tenant, api: APIClient, sse: OpenStream
) -> None:
    session_id = ready_session(api)
    url = f"{asgi_server.url}{API}/sessions/{session_id}/events"
    stream = sse(url, tenant.test_key).wait_open()
    assert stream.status == 200
    assert stream.response_headers["content-type"].startswith("text/event-stream")
    assert stream.response_headers["cache-control"].startswith("no-cache")

    response = api.post(
        f"{API}/sessions/{session_id}/calls", {"to": ECHO}, format="json"
    )
    assert response.status_code == 201, response.content
    call_id = response.json()["data"]["callId"]
    wait_for(lambda: Call.objects.get(public_id=call_id).state == "active")
    ended = api.post(f"{API}/sessions/{session_id}/calls/{call_id}/end")
    assert ended.status_code == 200, ended.content

    messages = through_first(
        stream.wait_for(
            lambda got: any(m.event == "call.ended" for m in got), timeout=10
        ),
        lambda m: m.event == "call.ended",
    )
    # The call's recordings may be finalised (``call.recording.ready``, after
    # ``call.ended`` in the log) by now: the lifecycle is the log up to ``call.ended``.
    of_call = through_first(
        logged(data__callId=call_id), lambda e: e.type == "call.ended"
    )
    assert ids(messages) == [str(event.public_id) for event in of_call]
    states = [m.envelope["data"]["call"]["state"] for m in messages]
    assert states[-1] == "ended"
    assert [s for s in states if s in ("ringing", "active", "ended")][:3] == [
        "ringing",
        "active",
        "ended",
    ]
    assert messages[-1].event == "call.ended"
    assert messages[-1].envelope["data"]["call"]["endReason"] == "completed"
    for message, event in zip(messages, of_call, strict=True):
        assert message.event == event.type
        assert message.envelope == {
            "id": str(event.public_id),
            "type": event.type,
            "createdAt": message.envelope["createdAt"],
            "sessionId": session_id,
            "data": json.loads(json.dumps(event.data)),
        }
    # One line of JSON per data field.
    assert all("\n" not in m.data for m in messages)


def test_resuming_with_last_event_id_sends_exactly_the_missed_events(
    asgi_server: LiveServer, tenant: Tenant, api: APIClient, sse: OpenStream
) -> None:
    url = f"{asgi_server.url}{API}/events"
    first = sse(url, tenant.test_key).wait_open()
    seen = new_session(api, "before")
    got = first.wait_for(lambda m: len(m) >= 1)
    assert got[0].event == "session.created" and got[0].envelope["sessionId"] == seen
    first.close()
    last_seen = got[-1].id
    assert last_seen is not None

    for name in ("missed 1", "missed 2", "missed 3"):
        new_session(api, name)
    missed = [
        str(event.public_id)
        for event in logged(
            environment=tenant.test, pk__gt=Event.objects.get(public_id=last_seen).pk
        )
    ]
    assert len(missed) == 3

    second = sse(url, tenant.test_key, {"Last-Event-ID": last_seen}).wait_open()
    replayed = second.wait_for(lambda m: len(m) >= 3)
    assert ids(replayed) == missed
    after = new_session(api, "after")
    live = second.wait_for(lambda m: any(x.envelope["sessionId"] == after for x in m))
    assert ids(live)[:3] == missed
    assert len(ids(live)) == len(set(ids(live))) == 4, "an event arrived twice"

    # ?lastEventId= is the same as the header (for clients that cannot set one).
    third = sse(f"{url}?lastEventId={missed[-1]}", tenant.test_key).wait_open()
    assert [m.envelope["sessionId"] for m in third.wait_for(lambda m: len(m) >= 1)] == [
        after
    ]


def test_events_emitted_while_resuming_arrive_once_each(
    asgi_server: LiveServer, tenant: Tenant, api: APIClient, sse: OpenStream
) -> None:
    start = new_session(api, "start")
    start_event = Event.objects.get(session_public_id=start)
    stream = sse(
        f"{asgi_server.url}{API}/events",
        tenant.test_key,
        {"Last-Event-ID": str(start_event.public_id)},
    )
    # Emit while the stream subscribes and replays: each event is in the replay, or
    # live, or both (then the live copy must be dropped).
    for n in range(15):
        new_session(api, f"racing {n}")
    expected = [
        str(e.public_id) for e in logged(environment=tenant.test, pk__gt=start_event.pk)
    ]
    stream.wait_for(lambda m: len(m) >= len(expected))
    time.sleep(0.5)
    assert ids(stream.messages) == expected


def test_a_heartbeat_comment_arrives_when_idle(
    asgi_server: LiveServer, tenant: Tenant, sse: OpenStream
) -> None:
    stream = sse(f"{asgi_server.url}{API}/events", tenant.test_key).wait_open()
    comments = stream.wait_comments(3, timeout=5)
    assert comments[:3] == ["ping", "ping", "ping"]
    assert stream.messages == []
    assert ": ping" in stream.lines


def test_the_environment_stream_carries_every_session_and_the_session_stream_one(
    asgi_server: LiveServer, tenant: Tenant, api: APIClient, sse: OpenStream
) -> None:
    one = new_session(api, "one")
    everything = sse(f"{asgi_server.url}{API}/events", tenant.test_key).wait_open()
    only_one = sse(
        f"{asgi_server.url}{API}/sessions/{one}/events", tenant.test_key
    ).wait_open()
    two = new_session(api, "two")
    api.post(f"{API}/sessions/{one}/connect")

    got = everything.wait_for(
        lambda m: {x.envelope["sessionId"] for x in m} >= {one, two}
    )
    assert {m.envelope["sessionId"] for m in got} == {one, two}
    mine = only_one.wait_for(lambda m: any(x.event == "connection.state" for x in m))
    everything.wait_for(lambda m: len(m) >= 1 + len(mine))
    assert {m.envelope["sessionId"] for m in only_one.messages} == {one}


def test_other_tenants_and_environments_never_see_the_events(
    asgi_server: LiveServer,
    tenant: Tenant,
    outsider: Tenant,
    api: APIClient,
    sse: OpenStream,
) -> None:
    url = f"{asgi_server.url}{API}/events"
    owner = sse(url, tenant.test_key).wait_open()
    strangers = [
        sse(url, outsider.test_key).wait_open(),
        sse(url, outsider.live_key).wait_open(),
        sse(url, tenant.live_key).wait_open(),
    ]
    session_id = ready_session(api)
    owner.wait_for(lambda m: any(x.event == "auth.paired" for x in m))
    for stranger in strangers:
        stranger.wait_comments(2)
        assert stranger.messages == []

    # Nor through the session route, nor by resuming after one of the owner's ids.
    owner_event = str(owner.messages[0].id)
    with httpx.Client(base_url=asgi_server.url, timeout=5) as client:
        for key in (outsider.test_key, tenant.live_key):
            headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
            response = client.get(
                f"{API}/sessions/{session_id}/events", headers=headers
            )
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "session_not_found"
            response = client.get(
                f"{API}/events", headers={**headers, "Last-Event-ID": owner_event}
            )
            assert response.status_code == 400
            assert response.json()["param"] == "lastEventId"


def test_stream_errors_are_problem_details(
    asgi_server: LiveServer, tenant: Tenant
) -> None:
    stream = {"Accept": "text/event-stream"}
    with httpx.Client(base_url=asgi_server.url, timeout=5) as client:
        missing = client.get(f"{API}/events", headers=stream)
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        body = missing.json()
        assert body["code"] == "missing_api_key" and body["status"] == 401
        assert body["requestId"] == missing.headers["x-request-id"]

        wrong = client.get(
            f"{API}/events", headers={**stream, "Authorization": "Bearer sb_test_nope"}
        )
        assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_api_key"

        auth = {**stream, "Authorization": f"Bearer {tenant.test_key}"}
        unknown = client.get(f"{API}/sessions/not-a-session/events", headers=auth)
        assert unknown.status_code == 404
        assert unknown.json()["code"] == "session_not_found"
        bogus = client.get(f"{API}/events", headers={**auth, "Last-Event-ID": "x"})
        assert bogus.status_code == 400
        assert bogus.json()["code"] == "unknown_last_event_id"


def test_a_revoked_key_cannot_open_a_stream(
    asgi_server: LiveServer, tenant: Tenant
) -> None:
    from accounts import services as account_services
    from accounts.models import ApiKey

    for key in ApiKey.objects.filter(environment=tenant.test):
        account_services.api_key_revoke(api_key=key)
    with httpx.Client(base_url=asgi_server.url, timeout=5) as client:
        response = client.get(
            f"{API}/events",
            headers={
                "Accept": "text/event-stream",
                "Authorization": f"Bearer {tenant.test_key}",
            },
        )
    assert response.status_code == 401
    assert response.json()["code"] == "revoked_api_key"


def test_without_event_stream_accept_the_same_url_answers_json(
    asgi_server: LiveServer, tenant: Tenant, api: APIClient
) -> None:
    session_id = new_session(api, "json")
    with httpx.Client(base_url=asgi_server.url, timeout=5) as client:
        response = client.get(
            f"{API}/sessions/{session_id}/events",
            headers={"Authorization": f"Bearer {tenant.test_key}"},
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    [event] = response.json()["data"]
    assert event["type"] == "session.created" and event["sessionId"] == session_id


def test_a_live_copy_of_a_replayed_event_is_dropped(
    tenant: Tenant, api: APIClient, settings: Any
) -> None:
    """Deterministically: a publish still on its way when the stream subscribed."""
    import asyncio

    from channels.layers import get_channel_layer

    from config import home
    from events import bus, sse
    from events.services import envelope_of

    settings.SSE_HEARTBEAT_S = 0.2
    first = Event.objects.get(session_public_id=new_session(api, "first"))
    second = Event.objects.get(session_public_id=new_session(api, "second"))

    async def scenario() -> list[bytes]:
        stream = sse.event_stream(tenant.test, None, str(first.public_id))
        chunks = [await anext(stream)]  # subscribed
        layer = get_channel_layer()
        # The late publish of an event the replay is about to send...
        await layer.group_send(
            bus.environment_group(tenant.test.public_id),
            {"type": "event.published", "envelope": envelope_of(second)},
        )
        while len(chunks) < 4:
            chunks.append(await asyncio.wait_for(anext(stream), 5))
        await stream.aclose()
        return chunks

    chunks = home.run_sync(scenario())
    assert chunks[0] == sse.RETRY
    assert chunks[1] == sse.frame(envelope_of(second))
    # ...is not sent again: only heartbeats follow.
    assert chunks[2:] == [sse.PING, sse.PING]


def test_idle_streams_hold_no_thread_each(
    asgi_server: LiveServer, tenant: Tenant, api: APIClient, settings: Any
) -> None:
    import asyncio
    import threading
    from contextlib import AsyncExitStack

    settings.SSE_HEARTBEAT_S = 15
    count = 60
    threads_before = threading.active_count()

    async def scenario() -> tuple[int, str]:
        headers = {
            "Authorization": f"Bearer {tenant.test_key}",
            "Accept": "text/event-stream",
        }
        limits = httpx.Limits(max_connections=count + 5)
        async with (
            httpx.AsyncClient(
                base_url=asgi_server.url, timeout=10, limits=limits
            ) as client,
            AsyncExitStack() as streams,
        ):
            lines = []
            for _ in range(count):
                response = await streams.enter_async_context(
                    client.stream("GET", f"{API}/events", headers=headers)
                )
                assert response.status_code == 200
                lines.append(response.aiter_lines())
                assert await anext(lines[-1]) == "retry: 3000"
            await asyncio.sleep(0.5)
            threads_open = threading.active_count()
            await asyncio.to_thread(new_session, api, "for everyone")
            last = lines[-1]
            while not (line := await anext(last)).startswith("data:"):
                pass
            return threads_open, line

    threads_open, line = asyncio.run(scenario())
    assert threads_open - threads_before < 10, (threads_before, threads_open)
    assert json.loads(line.removeprefix("data: "))["type"] == "session.created"


def test_a_client_that_falls_behind_is_disconnected_to_resume_from_the_log(
    tenant: Tenant, settings: Any
) -> None:
    import asyncio

    from channels.layers import get_channel_layer

    from config import home
    from events import bus, sse

    settings.SSE_MAX_BUFFERED = 10
    settings.SSE_HEARTBEAT_S = 5

    async def scenario() -> list[bytes]:
        stream = sse.event_stream(tenant.test, None, None)
        assert await anext(stream) == sse.RETRY
        layer = get_channel_layer()
        for n in range(15):
            envelope = {"id": f"e{n}", "type": "asset.ready", "data": {}}
            await layer.group_send(
                bus.environment_group(tenant.test.public_id),
                {"type": "event.published", "envelope": envelope},
            )
        await asyncio.sleep(0.2)  # the client reads nothing meanwhile
        return await asyncio.wait_for(_rest(stream), 3)

    async def _rest(stream: Any) -> list[bytes]:
        return [chunk async for chunk in stream]

    assert home.run_sync(scenario()) == [], "the stream should end, not skip events"


@pytest.mark.skipif(
    "InMemory" not in django_settings.CHANNEL_LAYERS["default"]["BACKEND"],
    reason="inspects the in-memory channel layer's groups",
)
def test_hanging_up_ends_the_subscription(
    asgi_server: LiveServer, tenant: Tenant, sse: OpenStream
) -> None:
    from channels.layers import get_channel_layer

    from events import bus

    layer: Any = get_channel_layer()
    group = bus.environment_group(tenant.test.public_id)
    stream = sse(f"{asgi_server.url}{API}/events", tenant.test_key).wait_open()
    assert len(layer.groups.get(group, {})) == 1
    stream.close()
    wait_for(lambda: not layer.groups.get(group))
