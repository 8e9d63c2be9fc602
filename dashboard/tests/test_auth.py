"""Logging in and out, the default environment and the account/environment switcher."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.selectors import DASHBOARD_ENVIRONMENT_KEY
from conftest import Tenant
from dashboard.tests.conftest import PASSWORD, browser_for, make_user

pytestmark = pytest.mark.django_db

PAGES = [
    "/dashboard/",
    "/dashboard/sessions/",
    "/dashboard/calls/",
    "/dashboard/console/",
    "/dashboard/assets/",
    "/dashboard/keys/",
    "/dashboard/webhooks/",
    "/dashboard/settings/",
]


def test_the_site_root_leads_to_the_dashboard(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/dashboard/"


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(
    client: Client, url: str
) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/dashboard/login/?next={url}")


def test_the_demo_owner_logs_in_with_the_password_bootstrap_demo_prints(
    client: Client,
) -> None:
    out = io.StringIO()
    call_command("bootstrap_demo", stdout=out)
    printed = re.search(r"/dashboard/\s+user (\S+)\s+password (\S+)", out.getvalue())
    assert printed, out.getvalue()
    user, password = printed.groups()
    response = client.post(
        "/dashboard/login/", {"username": user, "password": password}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/dashboard/"
    page = response.content.decode()
    assert "Demo account · Test" in page and "Overview" in page
    assert client.session[DASHBOARD_ENVIRONMENT_KEY]


def test_a_wrong_password_is_refused_with_a_message(
    client: Client, tenant: Tenant
) -> None:
    make_user("olga", tenant, "owner")
    response = client.post(
        "/dashboard/login/", {"username": "olga", "password": "wrong"}
    )
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert client.get("/dashboard/").status_code == 302


def test_login_goes_on_to_the_page_asked_for(client: Client, tenant: Tenant) -> None:
    make_user("olga", tenant, "owner")
    response = client.post(
        "/dashboard/login/?next=/dashboard/keys/",
        {"username": "olga", "password": PASSWORD, "next": "/dashboard/keys/"},
    )
    assert response["Location"] == "/dashboard/keys/"


def test_logging_out_ends_the_login(owner: Client) -> None:
    assert owner.get("/dashboard/logout/").status_code == 405  # a POST, never a link
    response = owner.post("/dashboard/logout/")
    assert response["Location"] == "/dashboard/login/"
    assert owner.get("/dashboard/").status_code == 302


def test_a_user_of_no_account_is_told_so(client: Client, db: Any) -> None:
    client.force_login(make_user("drifter", None, "member"))
    response = client.get("/dashboard/")
    assert response.status_code == 403
    assert "not a member of any account" in response.content.decode()


def test_the_test_environment_is_shown_first_and_marked_as_test(
    tenant: Tenant, client: Client
) -> None:
    client.force_login(make_user("olga", tenant, "owner"))
    page = client.get("/dashboard/").content.decode()
    assert client.session[DASHBOARD_ENVIRONMENT_KEY] == str(tenant.test.public_id)
    assert 'class="env-test"' in page
    assert 'data-testid="env-badge"' in page and ">\n      TEST\n" in page
    assert "Test environment — calls go to the simulated network" in page


def test_switching_to_live_is_kept_in_the_login_session(
    owner: Client, tenant: Tenant
) -> None:
    response = owner.post(
        "/dashboard/switch/",
        {"environment": str(tenant.live.public_id), "next": "/dashboard/keys/"},
    )
    assert response["Location"] == "/dashboard/keys/"
    assert owner.session[DASHBOARD_ENVIRONMENT_KEY] == str(tenant.live.public_id)
    page = owner.get("/dashboard/").content.decode()
    assert 'class="env-live"' in page and ">\n      LIVE\n" in page
    assert "simulated network" not in page


def test_the_switcher_offers_every_account_of_the_user(
    tenant: Tenant, outsider: Tenant
) -> None:
    user = make_user("consultant", tenant, "member")
    from accounts.models import Membership

    Membership.objects.create(user=user, account=outsider.account, role="admin")
    page = browser_for(user).get("/dashboard/").content.decode()
    for environment in (tenant.test, tenant.live, outsider.test, outsider.live):
        assert f'value="{environment.public_id}"' in page
    assert "Acme (member)" in page and "Outsider Ltd (admin)" in page


def test_an_environment_of_another_account_cannot_be_chosen(
    owner: Client, tenant: Tenant, outsider: Tenant
) -> None:
    response = owner.post(
        "/dashboard/switch/", {"environment": str(outsider.live.public_id)}
    )
    assert response.status_code == 404
    assert owner.session[DASHBOARD_ENVIRONMENT_KEY] == str(tenant.test.public_id)


def test_a_stale_choice_in_the_login_session_falls_back_to_an_own_environment(
    tenant: Tenant, outsider: Tenant
) -> None:
    user = make_user("olga", tenant, "owner")
    client = browser_for(user, outsider.live)  # e.g. the membership was removed since
    assert client.get("/dashboard/").status_code == 200
    assert client.session[DASHBOARD_ENVIRONMENT_KEY] == str(tenant.test.public_id)


def test_bootstrap_demo_prints_the_urls_of_the_port_served() -> None:
    out = io.StringIO()
    call_command("bootstrap_demo", "--base-url", "http://127.0.0.1:8123", stdout=out)
    printed = out.getvalue()
    assert "http://127.0.0.1:8123/dashboard/" in printed
    assert "http://127.0.0.1:8123/api/v1/environment" in printed
    assert ":8000" not in printed


def test_bootstrap_demo_revokes_the_keys_of_its_previous_run() -> None:
    def run() -> dict[str, str]:
        out = io.StringIO()
        call_command("bootstrap_demo", "--json", stdout=out)
        return json.loads(out.getvalue())

    first, second = run(), run()
    assert {first["testKey"], first["liveKey"]}.isdisjoint(
        {second["testKey"], second["liveKey"]}
    )
    api = APIClient()
    for old, new in (
        (first["testKey"], second["testKey"]),
        (first["liveKey"], second["liveKey"]),
    ):
        refused = api.get("/api/v1/environment", HTTP_AUTHORIZATION=f"Bearer {old}")
        assert refused.status_code == 401
        assert refused.json()["code"] == "revoked_api_key"
        served = api.get("/api/v1/environment", HTTP_AUTHORIZATION=f"Bearer {new}")
        assert served.status_code == 200
    demo_keys = ApiKey.objects.filter(name="demo (bootstrap)")
    assert demo_keys.count() == 4
    assert demo_keys.filter(revoked_at__isnull=True).count() == 2
