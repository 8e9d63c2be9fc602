"""A live call's page shows its input and output levels, measured by a meter that is
attached to the call only while someone looks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from calls.models import Call
from calls.runtime import control
from calls.runtime.engine import Engine
from calls.tests.conftest import wait_for
from conftest import Tenant
from dashboard import levels
from dashboard.tests.conftest import PASSWORD, Tab, make_user, paired_session
from dashboard.tests.test_browser import log_in

TALKER = "15550000002@s.whatsapp.net"  # answers and speaks a steady test signal


def active_call_with_the_talker(tenant: Tenant) -> Call:
    session = paired_session(tenant.test)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.test_key}")
    placed = api.post(
        f"/api/v1/sessions/{session.public_id}/calls", {"to": TALKER}, format="json"
    )
    assert placed.status_code == 201, placed.content
    call_id = placed.json()["data"]["callId"]
    return wait_for(
        lambda: (
            Call.objects.filter(public_id=call_id, state="active")
            .select_related("session")
            .first()
        ),
        timeout=15,
    )


def levels_url(call: Call) -> str:
    return f"/dashboard/calls/{call.session.public_id}/{call.public_id}/levels"


def read(client: Client, call: Call) -> dict[str, Any]:
    response = client.get(levels_url(call))
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.mark.usefixtures("transactional_db", "fast_network")
def test_the_talkers_voice_shows_as_input_and_the_silence_we_send_as_output(
    tenant: Tenant, engine: Engine
) -> None:
    call = active_call_with_the_talker(tenant)
    viewer = Client()
    viewer.force_login(make_user("levels-viewer", tenant, "member"))
    runtime = engine.runtimes[str(call.public_id)]
    assert runtime.clients.get(levels.KIND) is None  # nobody looked yet: no meter

    first = read(viewer, call)
    assert first["live"] is True and first["socket"] is False
    assert len(runtime.clients[levels.KIND]) == 1
    # The talker's test signal is loud; what we send (nothing) is silence.
    later = wait_for(lambda: (r := read(viewer, call))["inputDbfs"] > -30 and r)
    assert later["outputDbfs"] == levels.FLOOR_DB

    control.call_end(call)
    assert read(viewer, call) == {"live": False}


@pytest.mark.usefixtures("transactional_db", "fast_network")
def test_a_meter_nobody_reads_detaches_itself(
    tenant: Tenant, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(levels, "IDLE_S", 0.2)
    call = active_call_with_the_talker(tenant)
    viewer = Client()
    viewer.force_login(make_user("levels-idle", tenant, "member"))
    read(viewer, call)
    runtime = engine.runtimes[str(call.public_id)]
    assert runtime.clients[levels.KIND]
    wait_for(lambda: not runtime.clients.get(levels.KIND), timeout=5)
    assert not any(isinstance(s, levels.LevelMeter) for s in runtime.subscribers)


@pytest.mark.django_db
def test_another_environments_call_has_no_levels_here(
    tenant: Tenant, outsider: Tenant
) -> None:
    call = Call.objects.create(
        environment=outsider.test,
        session=paired_session(outsider.test),
        peer_address=TALKER,
        direction="outgoing",
        state="active",
        host="elsewhere",
    )
    viewer = Client()
    viewer.force_login(make_user("levels-nosy", tenant, "owner"))
    assert viewer.get(levels_url(call)).status_code == 404


@pytest.mark.browser
@pytest.mark.usefixtures("transactional_db", "fast_network")
def test_the_live_call_page_shows_the_levels_move(
    tab: Tab, tenant: Tenant, engine: Engine
) -> None:
    owner = make_user("levels-owner", tenant, "owner")
    call = active_call_with_the_talker(tenant)
    tab.do(log_in, owner.username, PASSWORD)

    def input_level(page: Any) -> str:
        page.goto(f"/dashboard/calls/{call.session.public_id}/{call.public_id}/")
        page.wait_for_function(
            "() => { const m = document.querySelector('[data-level=inputDbfs]');"
            " return m && m.value > -30; }",
            timeout=15_000,
        )
        return page.locator("[data-level-text=outputDbfs]").inner_text()

    assert tab.do(input_level) == "silent"
    control.call_end(call)
