"""Schemathesis against the live server finds nothing: every response matches the schema.

Its examples, coverage, fuzzing and stateful phases (following the schema's links) run
through its CLI with tests/api_schema/schemathesis.toml, which says what is left out and
why. The failures it reports are printed whole.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from calls.runtime.engine import Engine
from conftest import LiveServer, Tenant
from tests.api_schema.conftest import ROOT

pytestmark = pytest.mark.usefixtures("fast_network")

HERE = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


# A few thousand requests: about two minutes on an idle machine, several on a busy one.
@pytest.mark.timeout(600)
def test_schemathesis_finds_no_failure(
    engine: Engine,
    tenant: Tenant,
    asgi_server: LiveServer,
    settings: Any,
    tmp_path: Path,
) -> None:
    # A few thousand requests in two minutes, from one key.
    settings.API_RATE_LIMIT_PER_MINUTE = 1_000_000
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"{asgi_server.url}/api/v1/schema?format=json",
            "--url",
            asgi_server.url,
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env={
            **os.environ,
            "SWITCHBOARD_TEST_KEY": tenant.test_key,
            "PYTHONPATH": str(ROOT),
            "NO_COLOR": "1",
        },
        capture_output=True,
        text=True,
        timeout=570,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-30000:]
    summary = output[output.rfind("SUMMARY") :]
    assert "Failures" not in summary and "Errors" not in summary, output[-30000:]
    print(summary)  # what was covered, for the log (pytest -rP shows it)
