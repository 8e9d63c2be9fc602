from __future__ import annotations

import pytest
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey, Environment
from conftest import Tenant, is_problem

pytestmark = pytest.mark.django_db

URL = "/api/v1/environment"


def test_environment_returns_the_calling_keys_environment(tenant: Tenant) -> None:
    response = tenant.client("test").get(URL)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["id"] == str(tenant.test.public_id)
    assert data["accountId"] == str(tenant.account.public_id)
    assert data["kind"] == "test"
    assert data["recordingRetentionDays"] == 30
    assert data["recordCalls"] is True
    assert data["createdAt"].endswith("Z") and len(data["createdAt"]) == 24
    live = tenant.client("live").get(URL).json()["data"]
    assert live["id"] == str(tenant.live.public_id) and live["kind"] == "live"


def test_patch_changes_only_the_calling_environment(
    tenant: Tenant, outsider: Tenant
) -> None:
    response = tenant.client("test").patch(
        URL, {"recordingRetentionDays": 7, "recordCalls": False}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["data"]["recordingRetentionDays"] == 7
    assert response.json()["data"]["recordCalls"] is False
    assert Environment.objects.get(pk=tenant.test.pk).recording_retention_days == 7
    assert Environment.objects.get(pk=tenant.live.pk).recording_retention_days == 30
    assert Environment.objects.get(pk=outsider.test.pk).recording_retention_days == 30
    assert (
        outsider.client("test").get(URL).json()["data"]["recordingRetentionDays"] == 30
    )


@pytest.mark.parametrize("days", [0, 3651, "many"])
def test_patch_refuses_retention_out_of_range_naming_the_field(
    tenant: Tenant, days
) -> None:
    response = tenant.client().patch(
        URL, {"recordingRetentionDays": days}, format="json"
    )
    body = is_problem(response, 400, "validation_error")
    assert body["param"] == "recordingRetentionDays"
    assert Environment.objects.get(pk=tenant.test.pk).recording_retention_days == 30


def test_patch_refuses_read_only_fields(tenant: Tenant) -> None:
    response = tenant.client().patch(URL, {"kind": "live"}, format="json")
    assert is_problem(response, 400)["param"] == "kind"


def test_malformed_json_is_a_problem(tenant: Tenant) -> None:
    response = tenant.client().patch(URL, "{nope", content_type="application/json")
    is_problem(response, 400, "malformed_request")


def test_missing_key_is_401_problem(anon) -> None:
    response = anon.get(URL)
    is_problem(response, 401, "missing_api_key")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer sb_test_nope",
        "Bearer sb_test_" + "A" * 46,
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
)
def test_invalid_key_is_401_problem(anon, tenant: Tenant, header: str) -> None:
    anon.credentials(HTTP_AUTHORIZATION=header)
    body = is_problem(anon.get(URL), 401)
    assert body["code"] in {"invalid_api_key", "missing_api_key"}


def test_well_formed_but_unknown_key_is_401(anon, db) -> None:
    from accounts import keys

    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.generate('test').full}")
    is_problem(anon.get(URL), 401, "invalid_api_key")


def test_revoked_key_is_refused_on_the_next_request(tenant: Tenant) -> None:
    client = tenant.client("test")
    assert client.get(URL).status_code == 200
    services.api_key_revoke(api_key=ApiKey.objects.get(environment=tenant.test))
    is_problem(client.get(URL), 401, "revoked_api_key")
    assert tenant.client("live").get(URL).status_code == 200


def test_key_use_is_recorded(tenant: Tenant) -> None:
    tenant.client().get(URL)
    key = ApiKey.objects.get(environment=tenant.test)
    assert key.last_used_at is not None
    assert (timezone.now() - key.last_used_at).total_seconds() < 60


def test_every_response_carries_a_request_id(tenant: Tenant, anon) -> None:
    ok = tenant.client().get(URL)
    assert ok["X-Request-Id"].startswith("req_")
    echoed = tenant.client().get(URL, HTTP_X_REQUEST_ID="trace-123")
    assert echoed["X-Request-Id"] == "trace-123"
    assert anon.get(URL)["X-Request-Id"]


def test_unknown_api_path_is_404_problem(tenant: Tenant) -> None:
    is_problem(tenant.client().get("/api/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_problem(tenant: Tenant) -> None:
    is_problem(tenant.client().delete(URL), 405, "method_not_allowed")


def test_unsupported_content_type_is_415_problem(tenant: Tenant) -> None:
    response = tenant.client().patch(URL, "x=1", content_type="text/csv")
    is_problem(response, 415, "unsupported_media_type")


def test_rotating_the_signing_secret_shows_it_once_and_replaces_it(
    tenant: Tenant,
) -> None:
    before = Environment.objects.get(pk=tenant.test.pk).signing_secret
    response = tenant.client().post("/api/v1/environment/signing-secret")
    assert response.status_code == 200
    secret = response.json()["data"]["signingSecret"]
    assert secret.startswith("sbsig_") and secret != before
    assert Environment.objects.get(pk=tenant.test.pk).signing_secret == secret
    # The other environment keeps its own secret.
    assert Environment.objects.get(pk=tenant.live.pk).signing_secret not in ("", secret)
    assert secret not in tenant.client().get(URL).content.decode()


def test_the_event_retention_and_the_client_gone_delay_are_settings_of_the_environment(
    tenant: Tenant,
) -> None:
    client = tenant.client("live")
    shown = client.get(URL).json()["data"]
    assert shown["eventRetentionDays"] == 30
    assert shown["endCallWhenClientGoneAfterS"] == 60
    patched = client.patch(
        URL,
        {"eventRetentionDays": 7, "endCallWhenClientGoneAfterS": 0},
        format="json",
    )
    assert patched.status_code == 200, patched.content
    data = patched.json()["data"]
    assert (data["eventRetentionDays"], data["endCallWhenClientGoneAfterS"]) == (7, 0)
    tenant.live.refresh_from_db()
    assert tenant.live.event_retention_days == 7
    tenant.test.refresh_from_db()
    assert tenant.test.end_call_when_client_gone_after_s == 60
    refused = client.patch(URL, {"eventRetentionDays": 0}, format="json")
    assert refused.status_code == 400
    assert refused.json()["param"] == "eventRetentionDays"
