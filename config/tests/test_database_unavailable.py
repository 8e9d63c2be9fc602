"""A database that goes away mid-request is a clean 503 problem; the next request works."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from accounts import selectors
from conftest import Tenant, is_problem

pytestmark = pytest.mark.django_db


def test_a_lost_database_connection_is_a_503_to_retry(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = selectors.api_key_by_secret

    def lost(token: str) -> object:
        raise OperationalError(
            "server closed the connection unexpectedly\n"
            "This probably means the server terminated abnormally"
        )

    monkeypatch.setattr(selectors, "api_key_by_secret", lost)
    response = tenant.client().get("/api/v1/environment")
    problem = is_problem(response, 503, "database_unavailable")
    assert response["Retry-After"] == "1" and "retry" in problem["detail"]
    monkeypatch.setattr(selectors, "api_key_by_secret", real)
    assert tenant.client().get("/api/v1/environment").status_code == 200


def test_a_query_of_its_own_that_fails_is_still_a_500(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(token: str) -> object:
        raise OperationalError("no such column: accounts_apikey.nonsense")

    monkeypatch.setattr(selectors, "api_key_by_secret", broken)
    client = tenant.client()
    client.raise_request_exception = False
    is_problem(client.get("/api/v1/environment"), 500, "internal_error")
