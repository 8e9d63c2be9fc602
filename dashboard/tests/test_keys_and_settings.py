"""API keys (shown once, revoked for good) and the environment's settings."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiKey
from conftest import Tenant

pytestmark = pytest.mark.django_db

KEY_RE = re.compile(r'value="(sb_test_[0-9A-Za-z]+)" data-testid="new-key"')


def api_with(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_new_key_is_shown_once_and_works_with_the_api(
    owner: Client, tenant: Tenant
) -> None:
    response = owner.post("/dashboard/keys/", {"name": "voice agent"})
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")  # never cached
    page = response.content.decode()
    match = KEY_RE.search(page)
    assert match, page
    secret = match.group(1)
    assert "it is shown only this once" in page and "data-copy" in page
    key = ApiKey.objects.get(name="voice agent")
    assert key.environment == tenant.test
    assert secret not in (key.key_hash, key.display_prefix, key.last4)
    listing = owner.get("/dashboard/keys/").content.decode()
    assert secret not in listing
    assert f"{key.display_prefix}…{key.last4}" in listing
    assert api_with(secret).get("/api/v1/environment").status_code == 200
    listing = owner.get("/dashboard/keys/").content.decode()
    row = listing[listing.index("voice agent") :]
    assert "never" not in row[: row.index("</tr>")]  # last used is shown


def test_a_key_needs_a_name(owner: Client) -> None:
    response = owner.post("/dashboard/keys/", {"name": ""})
    assert response.status_code == 400
    assert "Name the key after what will use it" in response.content.decode()


def test_a_revoked_key_is_refused_by_the_api(owner: Client, tenant: Tenant) -> None:
    key = ApiKey.objects.get(environment=tenant.test)
    page = owner.get("/dashboard/keys/").content.decode()
    assert 'data-confirm="Revoke “tests”?' in page
    response = owner.post(f"/dashboard/keys/{key.public_id}/revoke", follow=True)
    assert "revoked; requests that present it are refused" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    refused = tenant.client("test").get("/api/v1/environment")
    assert refused.status_code == 401 and refused.json()["code"] == "revoked_api_key"


def test_keys_of_the_live_environment_are_listed_there(
    as_role: Callable[..., Client], tenant: Tenant
) -> None:
    owner = as_role("owner", tenant.live)
    owner.post("/dashboard/keys/", {"name": "production agent"})
    assert ApiKey.objects.get(name="production agent").environment == tenant.live
    assert "sb_live_…" in owner.get("/dashboard/keys/").content.decode()


def test_members_see_keys_but_cannot_create_or_revoke_them(
    member: Client, tenant: Tenant
) -> None:
    key = ApiKey.objects.get(environment=tenant.test)
    page = member.get("/dashboard/keys/").content.decode()
    assert f"{key.display_prefix}…{key.last4}" in page
    assert "Create key" not in page and "Revoke" not in page
    refused = member.post("/dashboard/keys/", {"name": "sneaky"})
    assert refused.status_code == 403
    assert "Only owners and admins can create API keys." in refused.content.decode()
    assert member.post(f"/dashboard/keys/{key.public_id}/revoke").status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None and not ApiKey.objects.filter(name="sneaky").exists()


def test_another_accounts_or_environments_key_cannot_be_revoked(
    owner: Client, tenant: Tenant, outsider: Tenant
) -> None:
    for key in (
        ApiKey.objects.get(environment=outsider.test),
        ApiKey.objects.get(environment=tenant.live),
    ):
        assert owner.post(f"/dashboard/keys/{key.public_id}/revoke").status_code == 404
        key.refresh_from_db()
        assert key.revoked_at is None
    page = owner.get("/dashboard/keys/").content.decode()
    assert "sb_live_" not in page


# ---------------------------------------------------------------- settings


def test_settings_change_retention_and_recording(owner: Client, tenant: Tenant) -> None:
    page = owner.get("/dashboard/settings/").content.decode()
    assert 'name="recording_retention_days" value="30"' in page
    response = owner.post(
        "/dashboard/settings/", {"recording_retention_days": "90"}, follow=True
    )
    assert "Settings saved." in response.content.decode()
    tenant.test.refresh_from_db()
    tenant.live.refresh_from_db()
    assert tenant.test.recording_retention_days == 90
    assert tenant.test.record_calls is False  # an unticked box
    # The other environment is as it was.
    assert tenant.live.recording_retention_days == 30


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("0", "Keep recordings for at least 1 day."),
        ("3651", "at most 3650 days"),
        ("soon", "Give a whole number of days"),
        ("", "Give a number of days between 1 and 3650."),
    ],
)
def test_bad_settings_are_explained(
    owner: Client, tenant: Tenant, days: str, message: str
) -> None:
    response = owner.post(
        "/dashboard/settings/", {"recording_retention_days": days, "record_calls": "on"}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    tenant.test.refresh_from_db()
    assert tenant.test.recording_retention_days == 30


def test_members_read_settings_but_cannot_change_them(
    member: Client, tenant: Tenant
) -> None:
    page = member.get("/dashboard/settings/").content.decode()
    assert "Only owners and admins can change settings." in page
    assert "disabled" in page and "Save settings" not in page
    response = member.post("/dashboard/settings/", {"recording_retention_days": "5"})
    assert response.status_code == 403
    tenant.test.refresh_from_db()
    assert tenant.test.recording_retention_days == 30


def test_admins_change_settings(as_role: Callable[..., Client], tenant: Tenant) -> None:
    as_role("admin").post(
        "/dashboard/settings/", {"recording_retention_days": "7", "record_calls": "on"}
    )
    tenant.test.refresh_from_db()
    assert tenant.test.recording_retention_days == 7 and tenant.test.record_calls
