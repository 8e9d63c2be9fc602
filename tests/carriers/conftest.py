"""Harnesses that let the carrier contract drive each driver's far end.

A harness knows how to make a line of its carrier ready, which address gives which
behaviour, and how its network delivers a call. Each carrier that joins the platform
adds one here (with the real peer it is tested against) and passes the same suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from rest_framework.test import APIClient

from calls.models import Session
from calls.runtime.engine import Engine
from calls.tests.conftest import engine, fast_network, wait_for
from config import home
from conftest import Tenant
from tests.carriers import toy

__all__ = ["Harness", "engine", "fast_network", "harness", "wait_for"]

SESSIONS = "/api/v1/sessions"


@dataclass
class Harness:
    """One carrier's far end, as the contract drives it."""

    carrier: str
    environment: str  # the environment its sessions live in
    lossless: bool
    # Outcome → address that produces it: echo, busy, declines, no_answer,
    # unreachable (refused with a network error), hangs_up (answers, then hangs up).
    addresses: dict[str, str]
    caller: str
    tenant: Tenant
    session_body: dict[str, Any] = field(default_factory=dict)

    def client(self) -> APIClient:
        return self.tenant.client(self.environment)

    def ready_session(self) -> str:
        client = self.client()
        response = client.post(
            SESSIONS, {"displayName": "Line", **self.session_body}, format="json"
        )
        assert response.status_code == 201, response.content
        session_id = response.json()["data"]["sessionId"]
        assert client.post(f"{SESSIONS}/{session_id}/connect").status_code == 200
        if self.carrier == "simulator":
            scanned = client.post(f"/api/v1/test-helpers/sessions/{session_id}/scan")
            assert scanned.status_code == 200, scanned.content
        wait_for(
            lambda: Session.objects.get(public_id=session_id).connected, timeout=10
        )
        return session_id

    def call_in(self, session_id: str, behaviour: str) -> str:
        """The network delivers a call from ``caller``: ``echo`` or ``gives_up``."""
        if self.carrier == "simulator":
            response = self.client().post(
                f"/api/v1/test-helpers/sessions/{session_id}/incoming-calls",
                {
                    "from": self.caller,
                    "behavior": "caller_gives_up"
                    if behaviour == "gives_up"
                    else "echo",
                },
                format="json",
            )
            assert response.status_code == 201, response.content
            return str(response.json()["data"]["callId"])
        driver = toy_driver()
        return home.run_sync(driver.call_in(session_id, self.caller, behaviour))

    def peer_leg(self, engine: Engine, call_id: str) -> Any:
        if self.carrier == "simulator":
            runtime = engine.runtimes.get(call_id)
            return runtime.leg if runtime is not None else None
        return toy_driver().legs.get(call_id)

    def peer_heard_hangup(self, leg: Any) -> bool:
        if self.carrier == "simulator":
            return bool(leg.ended)
        return "hangup" in leg.events


def toy_driver() -> toy.ToyCarrier:
    from calls.carriers import get_carrier

    driver = get_carrier("toy")
    assert isinstance(driver, toy.ToyCarrier)
    return driver


@pytest.fixture
def with_toy(settings: Any) -> Any:
    """Enable the toy carrier for live environments, by settings alone."""
    settings.CARRIERS = {**settings.CARRIERS, "toy": "tests.carriers.toy.ToyCarrier"}
    settings.SWITCHBOARD_CARRIERS = ["simulator", "toy"]
    return settings


@pytest.fixture(params=["simulator", "toy"])
def harness(
    request: pytest.FixtureRequest, tenant: Tenant, engine: Engine, fast_network: Any
) -> Iterator[Harness]:
    if request.param == "simulator":
        yield Harness(
            carrier="simulator",
            environment="test",
            lossless=True,
            addresses={
                "echo": "15550000001@s.whatsapp.net",
                "busy": "15550000003@s.whatsapp.net",
                "no_answer": "15550000004@s.whatsapp.net",
                "declines": "15550000005@s.whatsapp.net",
                "hangs_up": "15550000006@s.whatsapp.net",
                "unreachable": "15550000007@s.whatsapp.net",
            },
            caller="4915112345678@s.whatsapp.net",
            tenant=tenant,
        )
        return
    request.getfixturevalue("with_toy")
    yield Harness(
        carrier="toy",
        environment="live",
        lossless=True,
        addresses={
            name: f"toy:{name}"
            for name in (
                "echo",
                "busy",
                "no_answer",
                "declines",
                "hangs_up",
                "unreachable",
            )
        },
        caller="toy:caller",
        tenant=tenant,
        session_body={
            "carrier": "toy",
            "toy": {"server": "toy.example", "token": toy.TOKEN},
        },
    )
