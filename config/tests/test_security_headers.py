"""The dashboard and the admin carry a Content-Security-Policy; the API does not."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_dashboard_and_admin_pages_forbid_foreign_and_inline_code() -> None:
    client = Client()
    login = client.get("/dashboard/login/")
    policy = login.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "'unsafe-eval'" not in policy
    assert (
        "frame-ancestors 'none'" in policy and "connect-src 'self' ws: wss:" in policy
    )
    admin = client.get("/admin/login/")
    assert "script-src 'self'" in admin.headers["Content-Security-Policy"]
    assert "Content-Security-Policy" not in client.get("/healthz").headers
