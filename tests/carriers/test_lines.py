"""Sessions name their carrier: settings, write-only credentials, line leases, errors.

Driven through the API with the toy carrier (``toy.py``), the only driver here whose
lines need a process to hold them.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.utils import timezone

from calls.credentials import CredentialsUnreadable, unseal
from calls.models import Session
from calls.runtime.engine import Engine
from config import home
from conftest import Tenant, is_problem
from events.models import Event
from tests.carriers import toy
from tests.carriers.conftest import toy_driver, wait_for

SESSIONS = "/api/v1/sessions"
SETTINGS = {"server": "toy.example", "token": toy.TOKEN}

pytestmark = pytest.mark.usefixtures("with_toy")


def create(tenant: Tenant, **body: Any) -> Any:
    return tenant.client("live").post(
        SESSIONS, {"displayName": "Trunk", **body}, format="json"
    )


def toy_session(tenant: Tenant, token: str = toy.TOKEN) -> dict[str, Any]:
    response = create(
        tenant, carrier="toy", toy={"server": "toy.example", "token": token}
    )
    assert response.status_code == 201, response.content
    return dict(response.json()["data"])


def session_of(tenant: Tenant, session_id: str) -> dict[str, Any]:
    return dict(tenant.client("live").get(f"{SESSIONS}/{session_id}").json()["data"])


def test_a_session_names_its_carrier_and_its_credentials_are_write_only(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data = toy_session(tenant)
    assert data["carrier"] == "toy"
    assert data["toy"] == {
        "server": "toy.example",
        "hasToken": True,
        "tokenLast4": toy.TOKEN[-4:],
    }
    assert data["paired"] is True and data["connectionState"] == "created"
    assert data["lastError"] is None
    stored = Session.objects.get(public_id=data["sessionId"])
    # Encrypted at rest, never shown, never in an event, never logged.
    assert toy.TOKEN not in stored.credentials
    assert unseal(stored.credentials) == {"token": toy.TOKEN}
    assert toy.TOKEN not in str(session_of(tenant, data["sessionId"]))
    assert all(toy.TOKEN not in str(event.data) for event in Event.objects.all())
    assert toy.TOKEN not in caplog.text


def test_test_environments_take_only_the_simulator_and_live_ones_the_enabled(
    tenant: Tenant,
) -> None:
    refused = tenant.client("test").post(
        SESSIONS,
        {"displayName": "x", "carrier": "toy", "toy": SETTINGS},
        format="json",
    )
    body = is_problem(refused, 400, "carrier_not_available")
    assert body["param"] == "carrier" and "simulator" in body["detail"]
    unknown = create(tenant, carrier="carrier-pigeon")
    assert is_problem(unknown, 400, "carrier_not_available")["param"] == "carrier"
    default = create(tenant)
    assert default.status_code == 201 and default.json()["data"]["carrier"] == (
        "simulator"
    )
    assert Session.objects.count() == 1


def test_settings_for_another_carrier_are_400_naming_them(tenant: Tenant) -> None:
    response = create(tenant, carrier="simulator", toy=SETTINGS)
    assert is_problem(response, 400, "validation_error")["param"] == "toy"
    assert not Session.objects.exists()


def test_a_session_without_carrier_takes_the_default_with_its_settings(
    tenant: Tenant, settings: Any
) -> None:
    settings.SWITCHBOARD_CARRIERS = ["toy", "simulator"]
    response = create(tenant, toy=SETTINGS)
    assert response.status_code == 201, response.content
    assert response.json()["data"]["carrier"] == "toy"
    assert response.json()["data"]["toy"]["hasToken"] is True


@pytest.mark.parametrize(
    ("settings_object", "param"),
    [
        ({"server": "toy.example"}, "toy.token"),
        ({"token": "t"}, "toy.server"),
        ({**SETTINGS, "colour": "red"}, "toy.colour"),
    ],
)
def test_bad_carrier_settings_are_400_naming_the_field(
    tenant: Tenant, settings_object: dict[str, Any], param: str
) -> None:
    response = create(tenant, carrier="toy", toy=settings_object)
    assert is_problem(response, 400, "validation_error")["param"] == param
    assert not Session.objects.exists() and not Event.objects.exists()


def test_pairing_endpoints_are_409_for_a_carrier_that_does_not_pair(
    tenant: Tenant,
) -> None:
    session_id = toy_session(tenant)["sessionId"]
    client = tenant.client("live")
    is_problem(
        client.get(f"{SESSIONS}/{session_id}/auth/qr"), 409, "not_supported_by_carrier"
    )
    is_problem(
        client.post(
            f"{SESSIONS}/{session_id}/auth/pairing-code",
            {"phoneNumber": "+15551230000"},
            format="json",
        ),
        409,
        "not_supported_by_carrier",
    )


def test_a_refused_line_is_a_fact_and_new_settings_bring_it_up(
    tenant: Tenant, engine: Engine
) -> None:
    session_id = toy_session(tenant, token="wrong")["sessionId"]
    client = tenant.client("live")
    connecting = client.post(f"{SESSIONS}/{session_id}/connect").json()["data"]
    assert connecting["connectionState"] == "connecting"
    failed = wait_for(
        lambda: (
            (data := session_of(tenant, session_id))["connectionState"] == "error"
            and data
        ),
        timeout=10,
    )
    assert failed["lastError"]["code"] == "401"
    assert "refused the token" in failed["lastError"]["message"]
    assert failed["lastError"]["at"].endswith("Z")

    patched = client.patch(
        f"{SESSIONS}/{session_id}", {"toy": {"token": toy.TOKEN}}, format="json"
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["data"]["toy"]["server"] == "toy.example"  # kept
    connected = wait_for(
        lambda: (data := session_of(tenant, session_id))["connected"] and data,
        timeout=10,
    )
    assert connected["lastError"] is None and connected["status"] == "ready"
    states = [
        event.data["connectionState"]
        for event in Event.objects.filter(type="connection.state").order_by("pk")
    ]
    assert states == ["connecting", "error", "connecting", "connected"]


def test_disconnecting_takes_the_line_down_and_releases_it(
    tenant: Tenant, engine: Engine
) -> None:
    session_id = toy_session(tenant)["sessionId"]
    client = tenant.client("live")
    client.post(f"{SESSIONS}/{session_id}/connect")
    wait_for(lambda: session_of(tenant, session_id)["connected"], timeout=10)
    assert Session.objects.get(public_id=session_id).line_holder == engine.host_id
    client.post(f"{SESSIONS}/{session_id}/disconnect")
    wait_for(lambda: session_id in toy_driver().downs, timeout=10)
    wait_for(lambda: not Session.objects.get(public_id=session_id).line_holder)
    assert session_of(tenant, session_id)["connectionState"] == "disconnected"


def test_one_process_holds_a_line_and_another_takes_over_when_its_holder_dies(
    tenant: Tenant, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This process's own engine stays out; two engines play two media processes.
    monkeypatch.setattr(engine, "hosts_lines", False)
    first, second = Engine(), Engine()
    for other in (first, second):
        home.run_sync(other._start_carriers())
    session_id = toy_session(tenant)["sessionId"]
    tenant.client("live").post(f"{SESSIONS}/{session_id}/connect")
    driver = toy_driver()
    ups_before = driver.ups.count(session_id)

    home.run_sync(first.manage_lines())
    home.run_sync(second.manage_lines())
    home.run_sync(first.manage_lines())  # renewing brings nothing up again
    session = Session.objects.get(public_id=session_id)
    assert session.line_holder == first.host_id
    assert session.connection_state == "connected"
    assert driver.ups.count(session_id) == ups_before + 1
    assert session_id in first.lines and session_id not in second.lines

    # The first process dies: it stops renewing, and its lease lapses.
    Session.objects.filter(pk=session.pk).update(
        line_lease_until=timezone.now() - timedelta(seconds=1)
    )
    home.run_sync(second.manage_lines())
    assert Session.objects.get(pk=session.pk).line_holder == second.host_id
    assert driver.ups.count(session_id) == ups_before + 2
    # Were it only paused, it finds the line taken and lets go of its own presence.
    downs = driver.downs.count(session_id)
    home.run_sync(first.manage_lines())
    assert session_id not in first.lines
    assert driver.downs.count(session_id) == downs + 1
    assert Session.objects.get(pk=session.pk).line_holder == second.host_id


def test_credentials_survive_a_key_rotation(tenant: Tenant, settings: Any) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SWITCHBOARD_CREDENTIALS_KEYS = [old]
    session_id = toy_session(tenant)["sessionId"]
    before = Session.objects.get(public_id=session_id).credentials

    settings.SWITCHBOARD_CREDENTIALS_KEYS = [new, old]
    call_command("rotate_credentials", stdout=(out := _Out()))
    assert "Re-encrypted 1 session(s)." in out.text
    after = Session.objects.get(public_id=session_id).credentials
    assert after != before

    settings.SWITCHBOARD_CREDENTIALS_KEYS = [new]
    assert unseal(after) == {"token": toy.TOKEN}
    with pytest.raises(CredentialsUnreadable):
        unseal(before)
    assert session_of(tenant, session_id)["toy"]["hasToken"] is True


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        return None
