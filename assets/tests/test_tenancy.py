"""Another account, and the other environment of the same account, see nothing: 404."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import Environment
from assets.models import AudioAsset
from assets.tests.conftest import ASSETS, FIXTURES, upload
from calls import services
from calls.carriers.simulator import helpers as simulator_helpers
from calls.models import Call, CallState
from calls.runtime.engine import Engine
from calls.tests.conftest import wait_for
from conftest import Tenant, is_problem

pytestmark = pytest.mark.usefixtures("engine", "fast_network", "decode_in_process")

API = "/api/v1"


def strangers(
    tenant: Tenant, outsider: Tenant
) -> dict[str, tuple[APIClient, Environment]]:
    return {
        "other account": (outsider.client(), outsider.test),
        "other environment": (tenant.client("live"), tenant.live),
    }


def live_call(client: APIClient, environment: Environment) -> tuple[str, str]:
    # Paired through services: live environments have no test helpers.
    session = services.session_create(environment=environment, display_name="Line")
    services.session_connect(session=session)
    simulator_helpers.scan(session)
    session_id = str(session.public_id)
    call = client.post(
        f"{API}/sessions/{session_id}/calls",
        {"to": "15550000001@s.whatsapp.net"},
        format="json",
    )
    call_id = call.json()["data"]["callId"]
    wait_for(lambda: Call.objects.get(public_id=call_id).state == CallState.ACTIVE)
    return session_id, call_id


def play_url(session_id: str, call_id: str, action: str = "play") -> str:
    return f"{API}/sessions/{session_id}/calls/{call_id}/audio/{action}"


@pytest.mark.parametrize("who", ["other account", "other environment"])
def test_strangers_get_404_on_every_asset_route(
    engine: Engine, tenant: Tenant, outsider: Tenant, who: str
) -> None:
    owner = tenant.client()
    asset_id = upload(owner, FIXTURES / "speech_8k_mulaw.wav").json()["data"]["id"]
    stranger, their_environment = strangers(tenant, outsider)[who]

    is_problem(stranger.get(f"{ASSETS}/{asset_id}"), 404, "asset_not_found")
    is_problem(stranger.delete(f"{ASSETS}/{asset_id}"), 404, "asset_not_found")
    assert stranger.get(ASSETS).json()["data"] == []
    # Their own call cannot play the owner's asset either.
    session_id, call_id = live_call(stranger, their_environment)
    is_problem(
        stranger.post(
            play_url(session_id, call_id), {"assetId": asset_id}, format="json"
        ),
        404,
        "asset_not_found",
    )
    assert AudioAsset.objects.filter(public_id=asset_id, status="ready").exists()
    assert owner.get(f"{ASSETS}/{asset_id}").status_code == 200


@pytest.mark.parametrize("who", ["other account", "other environment"])
def test_strangers_get_404_playing_into_or_stopping_someone_elses_call(
    engine: Engine, tenant: Tenant, outsider: Tenant, who: str
) -> None:
    owner = tenant.client()
    session_id, call_id = live_call(owner, tenant.test)
    stranger, _ = strangers(tenant, outsider)[who]
    their_asset = upload(stranger, FIXTURES / "speech_8k_mulaw.wav").json()["data"][
        "id"
    ]

    for action, body in (("play", {"assetId": their_asset}), ("stop", None)):
        response: Any = stranger.post(
            play_url(session_id, call_id, action), body, format="json"
        )
        is_problem(response, 404, "session_not_found")
    # The owner's call is untouched and still takes its owner's commands.
    stop = owner.post(play_url(session_id, call_id, "stop"))
    assert stop.status_code == 200
    assert stop.json()["data"] == {"stopped": []}


def test_asset_ids_of_any_shape_are_404(tenant: Tenant) -> None:
    client = tenant.client()
    for bad in ("nope", "00000000-0000-0000-0000-000000000000", "1"):
        is_problem(client.get(f"{ASSETS}/{bad}"), 404, "asset_not_found")


def test_without_a_key_every_asset_route_is_401(anon: APIClient) -> None:
    for response in (
        anon.get(ASSETS),
        anon.post(ASSETS, {}, format="multipart"),
        anon.get(f"{ASSETS}/x"),
        anon.delete(f"{ASSETS}/x"),
        anon.post(play_url("s", "c"), {}, format="json"),
        anon.post(play_url("s", "c", "stop")),
    ):
        is_problem(response, 401)
