"""Harnesses that let the carrier contract drive each driver's far end.

A harness knows how to make a line of its carrier ready, which address gives which
behaviour, and how its network delivers a call. Each carrier that joins the platform
adds one here (with the real peer it is tested against) and passes the same suite.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from rest_framework.test import APIClient

from calls.models import Session
from calls.runtime.engine import Engine
from calls.tests.conftest import engine, fast_network, wait_for
from config import home
from conftest import LiveServer, Tenant
from tests.carriers import sip_peers, toy
from tests.carriers.whatsapp_peer import FakeGraph

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
    network: Any = None

    def client(self) -> APIClient:
        return self.tenant.client(self.environment)

    def ready_session(self, towards: str = "echo") -> str:
        """A connected line, ready to call the peer of outcome ``towards``."""
        client = self.client()
        body = {"displayName": "Line", **self.session_body}
        if self.carrier == "sip":
            # A trunk sends every INVITE through its server: the outcome's peer.
            body["sip"] = {**body["sip"], "server": self.network.server_of(towards)}
        if self.carrier == "whatsapp":
            body["whatsapp"] = self.network.new_number()
        response = client.post(SESSIONS, body, format="json")
        assert response.status_code == 201, response.content
        session_id = response.json()["data"]["sessionId"]
        if self.carrier == "whatsapp":
            self.network.register(session_id, body["whatsapp"])
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
        if self.carrier in ("sip", "whatsapp"):
            return str(self.network.call_in(session_id, behaviour))
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
        if self.carrier in ("simulator", "sip", "whatsapp"):
            runtime = engine.runtimes.get(call_id)
            return runtime.leg if runtime is not None else None
        return toy_driver().legs.get(call_id)

    def peer_heard_hangup(self, leg: Any) -> bool:
        if self.carrier == "whatsapp":
            # Meta heard of it: a terminate (or a reject) for the call.
            actions = self.network.fake.actions_of(leg.wacid)
            return bool({"terminate", "reject"} & set(actions))
        if self.carrier in ("simulator", "sip"):
            return bool(leg.ended)
        return "hangup" in leg.events

    def peer_hangs_up(self, engine: Engine, call_id: str) -> None:
        """The far end of an answered call hangs up."""
        if self.carrier == "sip":
            self.network.caller.hangup()
            return
        if self.carrier == "whatsapp":
            self.network.fake.user_hangs_up(self.peer_leg(engine, call_id).wacid)
            return
        leg = self.peer_leg(engine, call_id)

        async def hang_up() -> None:
            if self.carrier == "simulator":
                leg.end_from_peer("remote_hangup")
            else:
                leg.peer_ends("remote_hangup")

        home.run_sync(hang_up())


def toy_driver() -> toy.ToyCarrier:
    from calls.carriers import get_carrier

    driver = get_carrier("toy")
    assert isinstance(driver, toy.ToyCarrier)
    return driver


@pytest.fixture
def with_sip(settings: Any) -> Any:
    """Enable the SIP carrier for live environments."""
    settings.SWITCHBOARD_CARRIERS = ["simulator", "sip"]
    return settings


@pytest.fixture
def with_toy(settings: Any) -> Any:
    """Enable the toy carrier for live environments, by settings alone."""
    settings.CARRIERS = {**settings.CARRIERS, "toy": "tests.carriers.toy.ToyCarrier"}
    settings.SWITCHBOARD_CARRIERS = ["simulator", "toy"]
    return settings


class SipNetwork:
    """Real SIP peers on loopback for the contract: Debian baresip and SIPp."""

    def __init__(self, stack: ExitStack) -> None:
        self.echo = stack.enter_context(sip_peers.echo_peer(lifetime=1800))
        self.caller = stack.enter_context(sip_peers.caller_peer(lifetime=1800))
        self.refusals = {
            code: stack.enter_context(
                sip_peers.sipp(f"invite_{code}.xml", calls=1000, lifetime=1800)
            )
            for code in (486, 603, 503)
        }
        self.no_answer = stack.enter_context(
            sip_peers.sipp("invite_no_answer.xml", calls=1000, lifetime=1800)
        )
        self.hangs_up = stack.enter_context(
            sip_peers.sipp(
                "invite_answer.xml", calls=1000, hangup_after=0.5, lifetime=1800
            )
        )

    def server_of(self, outcome: str) -> str:
        peer: Any = {
            "echo": self.echo,
            "busy": self.refusals[486],
            "declines": self.refusals[603],
            "unreachable": self.refusals[503],
            "no_answer": self.no_answer,
            "hangs_up": self.hangs_up,
        }[outcome]
        return str(peer.host_port)

    def addresses(self) -> dict[str, str]:
        return {
            "echo": self.echo.uri,
            # Numbers, dialled through each outcome's trunk server.
            "busy": "+15550000003",
            "declines": "+15550000005",
            "no_answer": "+15550000004",
            "hangs_up": "+15550000006",
            "unreachable": "+15550000007",
        }

    def call_in(self, session_id: str, behaviour: str) -> str:
        from django.conf import settings

        from calls.models import Call

        session = Session.objects.get(public_id=session_id)
        user = session.carrier_settings["username"]
        before = set(Call.objects.values_list("public_id", flat=True))
        self.caller.dial(f"sip:{user}@{settings.SIP_BIND}")
        call = wait_for(
            lambda: (
                Call.objects.exclude(public_id__in=before)
                .filter(session=session)
                .first()
            ),
            timeout=10,
        )
        if behaviour == "gives_up":
            # The caller hangs up before anyone answers: a CANCEL.
            self.caller.hangup()
        return str(call.public_id)


@pytest.fixture
def with_whatsapp(settings: Any) -> Any:
    """Enable the WhatsApp carrier for live environments."""
    settings.SWITCHBOARD_CARRIERS = ["simulator", "whatsapp"]
    return settings


class WhatsAppNetwork:
    """Meta for the contract: a fake Graph API and aiortc peers playing WhatsApp users."""

    CALLER = "+4915112345678"

    def __init__(self, fake: FakeGraph, server: LiveServer) -> None:
        self.fake = fake
        self.server = server
        self.numbers: dict[str, str] = {}  # session id → phone number id

    def new_number(self) -> dict[str, str]:
        """A fresh business number's settings object, as a session is created with."""
        return {
            "phoneNumberId": str(secrets.randbelow(10**14) + 10**14),
            "accessToken": "EAAG" + secrets.token_urlsafe(32),
            "appSecret": secrets.token_hex(16),
            "graphApiBase": self.fake.base_url,
        }

    def register(self, session_id: str, number: dict[str, str]) -> None:
        """Meta learns the number and the session's webhook URL (the app's setup)."""
        self.numbers[session_id] = number["phoneNumberId"]
        self.fake.add_number(
            number["phoneNumberId"],
            access_token=number["accessToken"],
            app_secret=number["appSecret"],
            display_phone_number="1 555-010-" + number["phoneNumberId"][-4:],
            webhook_url=f"{self.server.url}/carriers/whatsapp/{session_id}/webhook",
        )

    def call_in(self, session_id: str, behaviour: str) -> str:
        """A WhatsApp user calls the line; the call's id once it rings here."""
        from calls.models import Call

        wacid = self.fake.call_in(
            self.numbers[session_id],
            self.CALLER.lstrip("+"),
            gives_up=behaviour == "gives_up",
        )
        call = wait_for(
            lambda: Call.objects.filter(carrier_ref=wacid).first(), timeout=10
        )
        return str(call.public_id)


@pytest.fixture(scope="session")
def fake_graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def whatsapp_network(
    fake_graph: FakeGraph, asgi_server: LiveServer, with_whatsapp: Any
) -> WhatsAppNetwork:
    return WhatsAppNetwork(fake_graph, asgi_server)


@pytest.fixture(scope="session")
def sip_network() -> Iterator[SipNetwork]:
    sip_peers.require_peers()
    with ExitStack() as stack:
        yield SipNetwork(stack)


@pytest.fixture(params=["simulator", "toy", "sip", "whatsapp"])
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
    if request.param == "sip":
        network: SipNetwork = request.getfixturevalue("sip_network")
        request.getfixturevalue("with_sip")
        yield Harness(
            carrier="sip",
            environment="live",
            lossless=False,
            addresses=network.addresses(),
            caller=f"sip:caller@{network.caller.host_port}",
            tenant=tenant,
            session_body={
                "carrier": "sip",
                "sip": {
                    "server": network.echo.host_port,
                    "username": f"line{secrets.token_hex(4)}",
                    "register": False,
                },
            },
            network=network,
        )
        return
    if request.param == "whatsapp":
        wa: WhatsAppNetwork = request.getfixturevalue("whatsapp_network")
        yield Harness(
            carrier="whatsapp",
            environment="live",
            lossless=False,
            # WhatsApp has no busy signal: a user on another call is offered the call.
            addresses={
                "echo": "+15550000001",
                "no_answer": "+15550000004",
                "declines": "+15550000005",
                "hangs_up": "+15550000006",
                "unreachable": "+15550000007",
            },
            caller=WhatsAppNetwork.CALLER,
            tenant=tenant,
            session_body={"carrier": "whatsapp"},
            network=wa,
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


def heard_fraction(
    received: Any, signal: Any, *, segment: int = 1600, search: int = 800
) -> float:
    """The share of ``signal``'s 100 ms segments that ``received`` carries (each found
    by correlation > 0.8 near where the previous one was): a lossy network may drop or
    stretch a few milliseconds, which shifts what follows without losing it. A segment
    not found nearby is looked for anywhere after the last one found: where a stall's
    backlog was dropped to keep latency bounded, what follows comes that much earlier,
    and is still heard (the dropped part is not)."""
    import numpy as np

    received = np.asarray(received, dtype=np.float64)
    signal = np.asarray(signal, dtype=np.float64)
    size = 1 << int(np.ceil(np.log2(len(received) + len(signal))))
    spectrum = np.fft.rfft(received, size) * np.conj(np.fft.rfft(signal, size))
    offset = int(np.argmax(np.fft.irfft(spectrum, size)[: len(received)]))
    heard = total = after = 0
    for start in range(0, len(signal) - segment + 1, segment):
        piece = signal[start : start + segment]
        total += 1
        best = 0.0
        low = max(0, offset + start - search)
        high = min(len(received) - segment, offset + start + search)
        for at in range(low, high + 1, 4):
            window = received[at : at + segment]
            score = float(np.corrcoef(window, piece)[0, 1]) if window.any() else 0.0
            if score > best:
                best, found = score, at
        if best <= 0.8:
            best, found = _best_match(received, piece, after)
        if best > 0.8:
            heard += 1
            offset = found - start
            after = max(0, found + segment - search)
    return heard / max(total, 1)


def _best_match(received: Any, piece: Any, low: int) -> tuple[float, int]:
    """The highest correlation coefficient of ``piece`` with a window of ``received``
    starting at ``low`` or later, and where (FFT correlation, running window sums)."""
    import numpy as np

    tail = received[low:]
    length = len(piece)
    if len(tail) < length:
        return 0.0, low
    centred = piece - piece.mean()
    size = 1 << int(np.ceil(np.log2(len(tail) + length)))
    products = np.fft.irfft(
        np.fft.rfft(tail, size) * np.conj(np.fft.rfft(centred, size)), size
    )[: len(tail) - length + 1]
    sums = np.concatenate(([0.0], np.cumsum(tail)))
    squares = np.concatenate(([0.0], np.cumsum(tail * tail)))
    window_sum = sums[length:] - sums[:-length]
    spread = np.maximum(
        squares[length:] - squares[:-length] - window_sum**2 / length, 0
    )
    scale = np.sqrt(spread * float(centred @ centred))
    scores = np.divide(products, scale, out=np.zeros_like(products), where=scale > 1e-9)
    at = int(np.argmax(scores))
    return float(scores[at]), low + at
