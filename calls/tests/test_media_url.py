"""A call's snapshot says where its media socket lives (``mediaUrl``), at no query cost."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from calls import hosts, services, snapshots
from calls.models import Call, CallState, Direction, EngineHost
from calls.runtime.engine import Engine
from calls.snapshots import call_snapshot
from calls.tests.test_calls_api import ECHO, calls_url, place, ready_session
from calls.transports.websocket.affinity import pointing_to_host
from calls.transports.websocket.link import ready_frame
from conftest import Tenant
from recordings.tests.conftest import ready_session as ready_session_row

PUBLIC = "https://switchboard.example.com"
MEDIA_2 = "wss://media-2.example.com"


@pytest.fixture(autouse=True)
def _fresh_host_cache(settings: Any) -> Iterator[None]:
    """Host ids repeat from test to test here; in a process they never do."""
    settings.SWITCHBOARD_PUBLIC_URL = PUBLIC
    snapshots.forget_hosts()
    yield
    snapshots.forget_hosts()


def media_path(session_id: Any, call_id: Any) -> str:
    return f"/api/v1/sessions/{session_id}/calls/{call_id}/media"


def hosted_call(tenant: Tenant, host: str) -> Call:
    """A live call's row, hosted by ``host`` (no runtime: only its snapshot matters)."""
    call = services.call_create(
        session=ready_session_row(tenant.test),
        peer_address=ECHO,
        direction=Direction.OUTGOING,
        host=host,
    )
    return Call.objects.select_related("session").get(pk=call.pk)


def register(host_id: str, url: str | None, settings: Any) -> EngineHost:
    settings.SWITCHBOARD_PROCESS_URL = url
    return hosts.host_register(host_id=host_id, channel_name="")


def test_a_call_placed_here_reports_its_socket_under_the_public_url(
    engine: Engine, fast_network: Any, api: APIClient
) -> None:
    session_id = ready_session(api)
    placed = place(api, session_id, ECHO)
    expected = "wss://switchboard.example.com" + media_path(
        session_id, placed["callId"]
    )
    assert placed["mediaUrl"] == expected

    got = api.get(calls_url(session_id, placed["callId"])).json()["data"]
    listed = api.get("/api/v1/calls").json()["data"]
    assert got["mediaUrl"] == expected
    assert [c["mediaUrl"] for c in listed if c["callId"] == placed["callId"]] == [
        expected
    ]


def test_a_plain_http_public_url_gives_a_ws_media_url(
    tenant: Tenant, settings: Any
) -> None:
    settings.SWITCHBOARD_PUBLIC_URL = "http://127.0.0.1:8000/"
    call = hosted_call(tenant, "nowhere")
    assert call_snapshot(call)["mediaUrl"] == "ws://127.0.0.1:8000" + media_path(
        call.session.public_id, call.public_id
    )


def test_a_host_with_its_own_url_is_where_its_live_calls_sockets_live(
    tenant: Tenant, settings: Any
) -> None:
    register("media-2:41:abc", MEDIA_2 + "/", settings)
    call = hosted_call(tenant, "media-2:41:abc")
    path = media_path(call.session.public_id, call.public_id)

    assert call_snapshot(call)["mediaUrl"] == MEDIA_2 + path
    body = tenant.client().get(
        calls_url(str(call.session.public_id), str(call.public_id))
    )
    assert body.json()["data"]["mediaUrl"] == MEDIA_2 + path


def test_an_http_process_url_is_recorded_as_its_websocket_form(
    tenant: Tenant, settings: Any
) -> None:
    register("media-3:42:abc", "https://media-3.example.com", settings)
    assert EngineHost.objects.get(host_id="media-3:42:abc").process_url == (
        "wss://media-3.example.com"
    )
    register("media-4:43:abc", None, settings)
    assert EngineHost.objects.get(host_id="media-4:43:abc").process_url == ""


def test_an_ended_call_points_under_the_public_url(
    tenant: Tenant, settings: Any
) -> None:
    register("media-2:41:abc", MEDIA_2, settings)
    call = hosted_call(tenant, "media-2:41:abc")
    for state in (CallState.RINGING, CallState.ACTIVE, CallState.ENDED):
        services.call_transition(call_id=call.pk, to=state)
    call.refresh_from_db()
    assert call_snapshot(call)["mediaUrl"].startswith(
        "wss://switchboard.example.com/api/v1/"
    )


def test_snapshots_look_their_host_up_once_per_process_not_per_call(
    tenant: Tenant, settings: Any
) -> None:
    register("media-2:41:abc", MEDIA_2, settings)
    register("media-5:44:abc", "wss://media-5.example.com", settings)
    calls = [hosted_call(tenant, "media-2:41:abc") for _ in range(3)]
    calls.append(hosted_call(tenant, "media-5:44:abc"))
    snapshots.forget_hosts()  # as in a process that has not seen these hosts yet

    with CaptureQueriesContext(connection) as first:
        urls = [call_snapshot(call)["mediaUrl"] for call in calls]
    with CaptureQueriesContext(connection) as again:
        assert [call_snapshot(call)["mediaUrl"] for call in calls] == urls
    # One query found every host; after it, none.
    assert len(first) == 1 and len(again) == 0
    assert [url.split("/api/")[0] for url in urls] == [MEDIA_2] * 3 + [
        "wss://media-5.example.com"
    ]


def test_a_host_registered_after_the_cache_filled_is_found_on_first_sight(
    tenant: Tenant, settings: Any
) -> None:
    register("media-2:41:abc", MEDIA_2, settings)
    call_snapshot(hosted_call(tenant, "media-2:41:abc"))  # fills the cache
    register("media-6:45:abc", "wss://media-6.example.com", settings)
    later = hosted_call(tenant, "media-6:45:abc")
    assert call_snapshot(later)["mediaUrl"].startswith("wss://media-6.example.com/")


def test_a_host_without_a_row_falls_back_and_is_not_asked_for_again(
    tenant: Tenant,
) -> None:
    call = hosted_call(tenant, "vanished:1:abc")
    snapshots.forget_hosts()
    with CaptureQueriesContext(connection) as first:
        assert call_snapshot(call)["mediaUrl"].startswith(
            PUBLIC.replace("https", "wss")
        )
    with CaptureQueriesContext(connection) as again:
        call_snapshot(call)
    assert len(first) == 1 and len(again) == 0


def test_a_bridged_socket_is_told_the_host_url_in_its_ready_frame_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = MEDIA_2 + media_path("s", "c-1")
    call = {"call_id": "c-1", "host": "media-2:41:abc", "hosted_media_url": url}
    sent: list[dict[str, Any]] = []
    snapshot = {"callId": "c-1", "mediaUrl": url}
    with caplog.at_level(logging.INFO, logger="calls.transports.websocket.affinity"):
        for _ in range(2):  # the client reconnected to this process again
            send = pointing_to_host(sent.append, call)
            send(ready_frame(snapshot))
            send({"type": "buffer", "bufferedMs": 0})

    assert [frame["type"] for frame in sent] == ["ready", "buffer"] * 2
    assert sent[0]["reconnect"] == {"mediaUrl": url, "reason": "bridged"}
    assert sent[0]["call"] == snapshot and sent[0]["media"]["sampleRate"] == 16000
    assert "reconnect" not in sent[1]
    told = [r for r in caplog.records if "c-1" in r.getMessage()]
    assert len(told) == 1 and told[0].levelno == logging.INFO
    assert url in told[0].getMessage()


def test_a_bridged_socket_whose_host_has_no_url_gets_the_plain_ready_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call = {"call_id": "c-2", "host": "media-7:46:abc", "hosted_media_url": None}
    sent: list[dict[str, Any]] = []
    with caplog.at_level(logging.INFO, logger="calls.transports.websocket.affinity"):
        pointing_to_host(sent.append, call)(ready_frame({"callId": "c-2"}))
    assert "reconnect" not in sent[0]
    assert any(
        "c-2" in r.getMessage() and "SWITCHBOARD_PROCESS_URL" in r.getMessage()
        for r in caplog.records
    )


def test_an_outsider_cannot_read_a_calls_media_url(
    tenant: Tenant, outsider: Tenant, settings: Any
) -> None:
    register("media-2:41:abc", MEDIA_2, settings)
    call = hosted_call(tenant, "media-2:41:abc")
    path = calls_url(str(call.session.public_id), str(call.public_id))
    for client in (outsider.client(), tenant.client("live")):
        assert client.get(path).status_code == 404
    assert tenant.client().get(path).json()["data"]["mediaUrl"].startswith(MEDIA_2)
