"""Sessions and calls belong to one environment: everyone else meets 404 (or 401)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import ApiKey
from calls.models import Call, Session
from config.ids import uuid7
from conftest import Tenant, is_problem
from events.models import Event

# No fast_network here: the owner's incoming call must still be ringing at the end.
pytestmark = pytest.mark.usefixtures("engine")

API = "/api/v1"
ECHO = "15550000001@s.whatsapp.net"
CALLER = "4915112345678@s.whatsapp.net"
S = "/sessions/{session}"
C = S + "/calls/{call}"
H = "/test-helpers/sessions/{session}"

# Every session and call route of calls/api/urls.py, with a body that would succeed for
# the owner. ``pairing`` routes aim at the owner's session that is waiting for a scan.
ROUTES: list[tuple[str, str, dict | None]] = [
    ("get", S, None),
    ("delete", S, None),
    ("post", S + "/connect", None),
    ("post", S + "/disconnect", None),
    ("post", S + "/logout", None),
    ("get", "pairing:" + S + "/auth/qr", None),
    ("post", "pairing:" + S + "/auth/pairing-code", {"phoneNumber": "+15551230000"}),
    ("get", S + "/calls", None),
    ("post", S + "/calls", {"to": ECHO}),
    ("get", C, None),
    ("post", C + "/accept", None),
    ("post", C + "/reject", None),
    ("post", C + "/end", None),
    ("post", C + "/mute", {"muted": True}),
    ("post", "pairing:" + H + "/scan", None),
    ("post", H + "/incoming-calls", {"from": CALLER, "behavior": "echo"}),
    ("post", H + "/drop", None),
]
ROUTE_IDS = [
    f"{method.upper()} {path.removeprefix('pairing:')}" for method, path, _ in ROUTES
]


@dataclass
class Scene:
    owner: Tenant
    ready: str  # a paired, connected session with a ringing incoming call
    pairing: str  # a session waiting for its QR to be scanned
    call: str

    def url(self, template: str, *, session: str = "", call: str = "") -> str:
        pairing = template.startswith("pairing:")
        return API + template.removeprefix("pairing:").format(
            session=session or (self.pairing if pairing else self.ready),
            call=call or self.call,
        )


def session_of(client: APIClient, name: str, *, pair: bool) -> str:
    response = client.post(f"{API}/sessions", {"displayName": name}, format="json")
    assert response.status_code == 201, response.content
    session_id = response.json()["data"]["sessionId"]
    assert client.post(f"{API}/sessions/{session_id}/connect").status_code == 200
    if pair:
        scanned = client.post(f"{API}/test-helpers/sessions/{session_id}/scan")
        assert scanned.status_code == 200, scanned.content
    return session_id


def send(client: APIClient, method: str, url: str, body: dict | None) -> Any:
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body or {}, format="json")


@pytest.fixture
def scene(tenant: Tenant) -> Scene:
    client = tenant.client()
    ready = session_of(client, "Ready", pair=True)
    pairing = session_of(client, "Pairing", pair=False)
    response = client.post(
        f"{API}/test-helpers/sessions/{ready}/incoming-calls",
        {"from": CALLER},
        format="json",
    )
    assert response.status_code == 201, response.content
    return Scene(tenant, ready, pairing, response.json()["data"]["callId"])


def owner_view(scene: Scene) -> tuple[Any, ...]:
    """Everything the owner can see; any change made by an intruder shows up here."""
    client = scene.owner.client()
    sessions = client.get(f"{API}/sessions").json()["data"]
    calls = client.get(f"{API}/calls").json()["data"]
    qr = client.get(scene.url("pairing:" + S + "/auth/qr")).json()
    qr.get("data", {}).pop("ttlMs", None)  # it counts down by itself
    qr.pop("requestId", None)
    events = list(
        Event.objects.filter(environment=scene.owner.test).values_list("id", flat=True)
    )
    return sessions, calls, qr, events


@pytest.fixture(params=["outsider", "own-live-key"])
def intruder(
    request: pytest.FixtureRequest, scene: Scene, outsider: Tenant
) -> APIClient:
    """Another account's key, or the owner's own key for the other environment."""
    if request.param == "outsider":
        # The outsider has a line of its own: it is a real tenant, just not the owner.
        client = outsider.client()
        session_of(client, "Theirs", pair=True)
        return client
    return scene.owner.client("live")


def assert_not_found_like_a_missing_id(
    intruder: APIClient, scene: Scene, method: str, path: str, body: dict | None
) -> None:
    """The intruder's 404 is the very problem a never-existing id gets."""
    problem = is_problem(send(intruder, method, scene.url(path), body), 404)
    ghost_session, ghost_call = str(uuid7()), str(uuid7())
    ghost_url = scene.url(path, session=ghost_session, call=ghost_call)
    ghost = is_problem(send(intruder, method, ghost_url, body), 404)
    for known in (problem, ghost):
        known.pop("requestId")
    for real, fake in [
        (scene.ready, ghost_session),
        (scene.pairing, ghost_session),
        (scene.call, ghost_call),
    ]:
        problem["detail"] = problem["detail"].replace(real, fake)
    assert problem == ghost


def test_other_environments_get_404_on_every_route_and_change_nothing(
    scene: Scene, intruder: APIClient
) -> None:
    failures = []
    for (method, path, body), route in zip(ROUTES, ROUTE_IDS, strict=True):
        before = owner_view(scene)
        calls_before = Call.objects.count()
        try:
            assert_not_found_like_a_missing_id(intruder, scene, method, path, body)
            assert owner_view(scene) == before, "the owner's objects changed"
            assert Call.objects.count() == calls_before, "a call was created"
        except AssertionError as failure:
            failures.append(f"{route}: {failure}")
    assert failures == []
    assert Call.objects.get(public_id=scene.call).state == "ringing"


@pytest.mark.parametrize("helper", ["scan", "incoming-calls", "drop"])
def test_live_environments_refuse_test_helpers_even_for_their_own_sessions(
    tenant: Tenant, helper: str
) -> None:
    live = tenant.client("live")
    session_id = session_of(live, "Live line", pair=False)
    before = live.get(f"{API}/sessions/{session_id}").json()["data"]
    response = live.post(
        f"{API}/test-helpers/sessions/{session_id}/{helper}",
        {"from": CALLER} if helper == "incoming-calls" else {},
        format="json",
    )
    is_problem(response, 404)
    after = live.get(f"{API}/sessions/{session_id}").json()["data"]
    assert after == before
    assert after["paired"] is False and after["connectionState"] == "connecting"
    assert not Call.objects.exists()


def test_lists_never_include_other_environments_objects(
    scene: Scene, outsider: Tenant
) -> None:
    theirs = outsider.client()
    their_session = session_of(theirs, "Theirs", pair=True)
    # An incoming call: it rings without timers that could fire during teardown.
    their_call = theirs.post(
        f"{API}/test-helpers/sessions/{their_session}/incoming-calls",
        {"from": CALLER},
        format="json",
    ).json()["data"]["callId"]
    live = scene.owner.client("live")
    live_session = session_of(live, "Live", pair=False)

    def ids(client: APIClient, path: str, key: str) -> set[str]:
        response = client.get(f"{API}{path}")
        assert response.status_code == 200, response.content
        return {item[key] for item in response.json()["data"]}

    owner = scene.owner.client()
    assert ids(owner, "/sessions", "sessionId") == {scene.ready, scene.pairing}
    assert ids(owner, "/calls", "callId") == {scene.call}
    assert ids(live, "/sessions", "sessionId") == {live_session}
    assert ids(live, "/calls", "callId") == set()
    assert ids(theirs, "/sessions", "sessionId") == {their_session}
    assert ids(theirs, "/calls", "callId") == {their_call}
    assert ids(outsider.client("live"), "/sessions", "sessionId") == set()


def test_a_call_is_reachable_only_under_its_own_session(scene: Scene) -> None:
    client = scene.owner.client()
    other = scene.pairing
    for method, tail, body in [
        ("get", "", None),
        ("post", "/accept", None),
        ("post", "/end", None),
        ("post", "/mute", {"muted": True}),
    ]:
        url = f"{API}/sessions/{other}/calls/{scene.call}{tail}"
        is_problem(send(client, method, url, body), 404, "call_not_found")
    assert Call.objects.get(public_id=scene.call).state == "ringing"


@pytest.mark.parametrize("credential", ["missing", "revoked", "unknown"])
def test_without_a_valid_key_every_route_is_401(scene: Scene, credential: str) -> None:
    client = APIClient()
    if credential == "revoked":
        key = ApiKey.objects.get(environment=scene.owner.test)
        account_services.api_key_revoke(api_key=key)
        client = scene.owner.client()
    elif credential == "unknown":
        client.credentials(HTTP_AUTHORIZATION="Bearer sb_test_" + "A" * 46)
    expected = {
        "missing": "missing_api_key",
        "revoked": "revoked_api_key",
        "unknown": "invalid_api_key",
    }[credential]
    sessions_before = list(Session.objects.values_list("pk", "updated_at"))
    for method, path, body in [
        ("get", "/sessions", None),
        ("post", "/sessions", {"displayName": "x"}),
        ("get", "/calls", None),
        *ROUTES,
    ]:
        url = scene.url(path) if "{" in path else API + path
        response = send(client, method, url, body)
        assert is_problem(response, 401, expected), (method, path)
    assert list(Session.objects.values_list("pk", "updated_at")) == sessions_before
    assert Call.objects.get(public_id=scene.call).state == "ringing"
