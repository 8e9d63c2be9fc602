"""Fixtures for the tests that read the OpenAPI schema or drive the live server with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from calls.tests.conftest import fast_network, wait_for
from conftest import LiveServer

# The call engine, which drops live calls and waits for their recordings at the end;
# tasks run in this process (recordings, webhooks), whatever REDIS_URL says.
from recordings.tests.conftest import calls_engine, eager_tasks, engine, spool_dir

__all__ = [
    "calls_engine",
    "eager_tasks",
    "engine",
    "fast_network",
    "openapi",
    "spelled_out",
    "spool_dir",
    "wait_for",
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def openapi(
    transactional_db: Any, asgi_server: LiveServer, tmp_path: Path
) -> tuple[dict[str, Any], Path]:
    """The schema as the server serves it at /api/v1/schema, and a file holding it.

    The server's threads see only committed rows, hence a transactional database."""
    response = httpx.get(f"{asgi_server.url}/api/v1/schema?format=json", timeout=30)
    assert response.status_code == 200, response.text[:500]
    path = tmp_path / "openapi.json"
    path.write_text(response.text)
    return json.loads(response.text), path


def spelled_out(node: Any) -> Any:
    """OpenAPI 3.0 tools (the generators, schemathesis) read ``nullable`` beside a
    lone ``allOf`` as "or null", which is how the schema means it; jsonschema needs it
    spelled out."""
    if isinstance(node, list):
        return [spelled_out(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: spelled_out(value) for key, value in node.items()}
    if node.get("nullable") and "allOf" in node and "type" not in node:
        return {"anyOf": [{"allOf": node["allOf"]}, {"enum": [None]}]}
    return node
