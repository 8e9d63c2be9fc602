"""A client generated from /api/v1/schema by openapi-python-client places the README's
first call against the real server, with typed results all the way."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest
import yaml

from calls.runtime.engine import Engine
from conftest import LiveServer, Tenant
from tests.api_schema.conftest import wait_for

pytestmark = pytest.mark.usefixtures("fast_network")

PACKAGE = "switchboard_client"
ECHO = "15550000001@s.whatsapp.net"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture
def generated(openapi: tuple[dict[str, Any], Path], tmp_path: Path) -> Iterator[str]:
    """Generate the client into a temporary folder (offline) and make it importable."""
    _, schema_file = openapi
    config = tmp_path / "generator.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "package_name_override": PACKAGE,
                "project_name_override": "switchboard-client",
                # The generated code is imported, not committed: no formatter run.
                "post_hooks": [],
                # The generator reads binary bodies only as application/octet-stream.
                "content_type_overrides": {"audio/wav": "application/octet-stream"},
            }
        )
    )
    out = tmp_path / "client"
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(schema_file),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(out / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every operation and model made it into the client: the generator skipped nothing.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(out))
    try:
        yield PACKAGE
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_client_places_the_first_call_with_typed_results(
    generated: str, engine: Engine, tenant: Tenant, asgi_server: LiveServer
) -> None:
    client_module = _module("client")
    models = _module("models")
    sessions = "api.sessions"
    calls = "api.calls"
    helpers = "api.test_helpers"
    client = client_module.AuthenticatedClient(
        base_url=asgi_server.url, token=tenant.test_key, raise_on_unexpected_status=True
    )

    # 1. A session; connecting it starts pairing (a rotating QR).
    created = _module(f"{sessions}.create_session").sync_detailed(
        client=client, body=models.SessionCreateRequest(display_name="My line")
    )
    assert created.status_code == 201
    assert isinstance(created.parsed, models.SessionEnvelope)
    session = created.parsed.data
    assert isinstance(session.session_id, UUID)
    assert session.connection_state == models.ConnectionStateEnum.CREATED
    session_id = session.session_id

    connected = _module(f"{sessions}.connect_session").sync(
        session_id=session_id, client=client
    )
    assert isinstance(connected, models.SessionEnvelope)
    assert connected.data.connection_state == models.ConnectionStateEnum.CONNECTING
    qr = _module(f"{sessions}.get_session_qr").sync(
        session_id=session_id, client=client
    )
    assert isinstance(qr, models.QrEnvelope)
    assert qr.data.qr and qr.data.ttl_ms > 0

    # 2. The simulated phone scans it: paired and connected.
    scanned = _module(f"{helpers}.simulate_scan").sync(
        session_id=session_id, client=client
    )
    assert isinstance(scanned, models.SessionEnvelope)
    assert scanned.data.paired is True
    assert scanned.data.status == "ready"

    # 3. Call the echo peer; the call's ids chain into the next requests.
    placed = _module(f"{calls}.place_call").sync_detailed(
        session_id=session_id, client=client, body=models.CallCreateRequest(to=ECHO)
    )
    assert placed.status_code == 201
    assert isinstance(placed.parsed, models.CallWithStreamsEnvelope)
    call = placed.parsed.data
    assert call.session_id == session_id
    assert call.direction == models.CallDirectionEnum.OUTGOING
    get_call = _module(f"{calls}.get_call")

    # 4. It rings, then answers.
    def state() -> Any:
        snapshot = get_call.sync(
            session_id=session_id, call_id=call.call_id, client=client
        )
        assert isinstance(snapshot, models.CallEnvelope)
        return snapshot.data.state == models.CallStateEnum.ACTIVE

    wait_for(state, timeout=10)

    # 5. Hang up.
    ended = _module(f"{calls}.end_call").sync(
        session_id=session_id, call_id=call.call_id, client=client
    )
    assert isinstance(ended, models.CallEnvelope)
    assert ended.data.state == models.CallStateEnum.ENDED
    assert ended.data.end_reason == "completed"
    assert ended.data.recordings == []

    listed = _module(f"{calls}.list_session_calls").sync(
        session_id=session_id, client=client
    )
    assert isinstance(listed, models.CallPage)
    assert [item.call_id for item in listed.data] == [call.call_id]
    assert listed.next_cursor is None


def test_generated_client_parses_problem_details(
    generated: str, engine: Engine, tenant: Tenant, asgi_server: LiveServer
) -> None:
    models = _module("models")
    client = _module("client").AuthenticatedClient(
        base_url=asgi_server.url, token=tenant.test_key
    )
    missing = UUID("0197a5c0-0000-7000-8000-000000000000")
    response = _module("api.sessions.get_session").sync_detailed(
        session_id=missing, client=client
    )
    assert response.status_code == 404
    assert isinstance(response.parsed, models.Problem)
    assert response.parsed.code == "session_not_found"
    assert response.parsed.request_id == response.headers["X-Request-Id"]

    refused = _module("client").AuthenticatedClient(
        base_url=asgi_server.url, token="sb_test_nope"
    )
    response = _module("api.sessions.list_sessions").sync_detailed(client=refused)
    assert response.status_code == 401
    assert isinstance(response.parsed, models.Problem)
    assert response.parsed.code == "invalid_api_key"
