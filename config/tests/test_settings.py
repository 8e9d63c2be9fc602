from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import Env, ImproperlyConfiguredEnv

ROOT = Path(__file__).resolve().parents[2]


def _django_setup(
    settings_module: str, **variables: str
) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "STORAGE_BACKEND"}
    }
    env.update(variables, DJANGO_SETTINGS_MODULE=settings_module)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REDIS_URL", "ftp://example"),
        ("DATABASE_URL", "mysql://db/x"),
        ("API_RATE_LIMIT_PER_MINUTE", "lots"),
        ("STORAGE_BACKEND", "floppy"),
        ("DEBUG", "maybe"),
    ],
)
def test_a_bad_typed_variable_stops_start_up_naming_it(
    variable: str, value: str
) -> None:
    result = _django_setup("config.settings.local", **{variable: value})
    assert result.returncode != 0
    assert variable in result.stderr
    assert "ImproperlyConfiguredEnv" in result.stderr


def test_production_settings_require_a_secret_key() -> None:
    result = _django_setup(
        "config.settings.production", ALLOWED_HOSTS="api.example.com"
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_check_deploy_is_clean_on_production_settings() -> None:
    result = _django_setup(
        "config.settings.production",
        SECRET_KEY="k" * 20 + "-production-secret-with-enough-entropy-0123456789",
        ALLOWED_HOSTS="api.example.com",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/switchboard",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_env_reader_parses_and_bounds_values() -> None:
    env = Env({"N": "5", "B": "yes", "L": "a, b,,c", "U": "redis://h:1/0"})
    assert env.int("N", 1, min_value=1) == 5
    assert env.bool("B", False) is True
    assert env.list("L", []) == ["a", "b", "c"]
    assert env.url("U", schemes=("redis",)) == "redis://h:1/0"
    assert env.int("MISSING", 7) == 7
    with pytest.raises(ImproperlyConfiguredEnv, match="N"):
        env.int("N", 1, max_value=4)
    with pytest.raises(ImproperlyConfiguredEnv, match="REQUIRED"):
        Env({}).str("REQUIRED", required=True)
