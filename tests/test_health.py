from __future__ import annotations

import pytest

from config import health

pytestmark = pytest.mark.django_db


def test_healthz_is_200_when_database_and_channel_layer_answer(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "channelLayer": "ok"}


def test_healthz_is_503_naming_what_failed(client, settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["channelLayer"]


def test_healthz_reports_a_database_failure(client, monkeypatch) -> None:
    def broken() -> str:
        return "OperationalError"

    monkeypatch.setattr(health, "_check_database", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]
