"""The webhooks API: create (secret once), list, read, change, delete, rotate; SSRF rules."""

from __future__ import annotations

import base64
import socket
from typing import Any

import pytest
from rest_framework.test import APIClient

from conftest import Tenant, is_problem
from events.models import Event, WebhookDelivery, WebhookEndpoint

API = "/api/v1"
HOOK = "https://hooks.example.com/switchboard"
WEBHOOK_FIELDS = {
    "id",
    "url",
    "events",
    "description",
    "enabled",
    "disabledReason",
    "secretRotatedAt",
    "createdAt",
    "updatedAt",
}

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def public_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Resolve example names to public documentation-free addresses, offline."""
    table = {
        "hooks.example.com": ["93.184.215.14"],
        "dual.example.com": ["93.184.215.14", "10.1.2.3"],
    }
    real = socket.getaddrinfo

    def fake(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host in table:
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 443))
                for address in table[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return table


@pytest.fixture
def production_rules(settings: Any) -> Any:
    settings.WEBHOOK_ALLOW_HTTP = False
    settings.WEBHOOK_ALLOW_PRIVATE = False
    return settings


def create(client: APIClient, **body: Any) -> Any:
    return client.post(
        f"{API}/webhooks", {"url": HOOK, "events": ["*"], **body}, format="json"
    )


def test_creating_a_webhook_returns_its_secret_once(api: APIClient) -> None:
    response = create(
        api, events=["call.ended", "call.state"], description="Agent backend"
    )
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert set(data) == WEBHOOK_FIELDS | {"secret"}
    assert data["url"] == HOOK
    assert data["events"] == ["call.ended", "call.state"]
    assert data["description"] == "Agent backend"
    assert data["enabled"] is True and data["disabledReason"] is None
    assert data["secretRotatedAt"] is None
    assert data["createdAt"].endswith("Z")
    secret = data["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24

    shown = api.get(f"{API}/webhooks/{data['id']}").json()["data"]
    assert set(shown) == WEBHOOK_FIELDS
    listed = api.get(f"{API}/webhooks").json()
    assert [hook["id"] for hook in listed["data"]] == [data["id"]]
    assert "secret" not in listed["data"][0]
    assert secret not in api.get(f"{API}/webhooks").content.decode()


def test_each_webhook_gets_its_own_secret(api: APIClient) -> None:
    first = create(api).json()["data"]["secret"]
    second = create(api).json()["data"]["secret"]
    assert first != second


def test_a_wildcard_subscribes_to_everything(api: APIClient) -> None:
    data = create(api, events=["call.ended", "*"]).json()["data"]
    assert data["events"] == ["*"]


def test_duplicate_event_types_are_kept_once(api: APIClient) -> None:
    data = create(api, events=["call.ended", "call.ended"]).json()["data"]
    assert data["events"] == ["call.ended"]


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"events": ["call.exploded"]}, "events[0]", "unknown_event_type"),
        ({"events": []}, "events", "no_event_types"),
        ({"events": "call.ended"}, "events", None),
        ({"url": ""}, "url", None),
        ({"url": "ftp://hooks.example.com/x"}, "url", "url_scheme_not_allowed"),
        ({"url": "https://"}, "url", "invalid_url"),
        ({"url": "https://hooks.example.com:99999/"}, "url", "invalid_url"),
        ({"url": "https://no-such-host.invalid/"}, "url", "url_unresolvable"),
        ({"description": "x" * 501}, "description", None),
        ({"secret": "whsec_mine"}, "secret", None),
    ],
)
def test_invalid_webhooks_are_refused_naming_the_field(
    api: APIClient, body: dict, param: str, code: str | None
) -> None:
    problem = is_problem(create(api, **body), 400, code)
    assert problem["param"] == param
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/plain-http",
        "https://127.0.0.1/hooks",
        "https://10.0.0.1/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hooks",
        "https://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://192.168.1.20/hooks",
        "https://172.16.0.5/hooks",
        "https://100.64.0.1/hooks",
        "https://0.0.0.0/hooks",
        "https://2130706433/hooks",
        "https://dual.example.com/hooks",
    ],
)
def test_production_rules_refuse_non_public_or_plain_http_urls(
    api: APIClient, production_rules: Any, url: str
) -> None:
    problem = is_problem(create(api, url=url), 400)
    assert problem["param"] == "url"
    assert problem["code"] in {"url_scheme_not_allowed", "url_not_public"}
    assert not WebhookEndpoint.objects.exists()


def test_production_rules_name_the_address_class(
    api: APIClient, production_rules: Any
) -> None:
    detail = is_problem(create(api, url="https://169.254.169.254/"), 400)["detail"]
    assert "link-local" in detail
    detail = is_problem(create(api, url="https://localhost/"), 400)["detail"]
    assert "loopback" in detail
    detail = is_problem(create(api, url="https://10.0.0.1/"), 400)["detail"]
    assert "private" in detail


def test_production_rules_accept_a_public_https_url(
    api: APIClient, production_rules: Any
) -> None:
    assert create(api, url=HOOK).status_code == 201


def test_production_rules_apply_to_changes_too(
    api: APIClient, production_rules: Any
) -> None:
    hook = create(api).json()["data"]
    response = api.patch(
        f"{API}/webhooks/{hook['id']}",
        {"url": "https://127.0.0.1/"},
        format="json",
    )
    assert is_problem(response, 400, "url_not_public")["param"] == "url"
    assert WebhookEndpoint.objects.get().url == HOOK


def test_local_settings_allow_http_and_loopback(api: APIClient) -> None:
    # config.settings.test (like local.py behind `make run`) allows both.
    response = create(api, url="http://localhost:9000/hooks")
    assert response.status_code == 201, response.content


def test_changing_a_webhook(api: APIClient) -> None:
    hook = create(api).json()["data"]
    response = api.patch(
        f"{API}/webhooks/{hook['id']}",
        {
            "url": "https://hooks.example.com/v2",
            "events": ["asset.ready"],
            "description": "v2",
            "enabled": False,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["url"] == "https://hooks.example.com/v2"
    assert data["events"] == ["asset.ready"]
    assert data["description"] == "v2"
    assert data["enabled"] is False and data["disabledReason"] == "manual"
    assert "secret" not in data

    again = api.patch(
        f"{API}/webhooks/{hook['id']}", {"enabled": True}, format="json"
    ).json()["data"]
    assert again["enabled"] is True and again["disabledReason"] is None


def test_changing_an_unknown_field_is_refused(api: APIClient) -> None:
    hook = create(api).json()["data"]
    response = api.patch(
        f"{API}/webhooks/{hook['id']}", {"secret": "whsec_x"}, format="json"
    )
    assert is_problem(response, 400)["param"] == "secret"


def test_deleting_a_webhook(api: APIClient) -> None:
    hook = create(api).json()["data"]
    response = api.delete(f"{API}/webhooks/{hook['id']}")
    assert response.status_code == 200
    assert response.json()["data"]["id"] == hook["id"]
    is_problem(api.get(f"{API}/webhooks/{hook['id']}"), 404, "webhook_not_found")
    assert api.get(f"{API}/webhooks").json()["data"] == []


def test_rotating_returns_a_new_secret_once(api: APIClient) -> None:
    hook = create(api).json()["data"]
    response = api.post(f"{API}/webhooks/{hook['id']}/rotate-secret")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["secret"].startswith("whsec_") and data["secret"] != hook["secret"]
    assert data["secretRotatedAt"] is not None
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == data["secret"]
    assert endpoint.previous_secret == hook["secret"]


def test_creating_with_an_idempotency_key_replays_the_first_response(
    api: APIClient,
) -> None:
    key = "create-hook-1"
    body = {"url": HOOK, "events": ["*"]}
    first = api.post(f"{API}/webhooks", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    second = api.post(f"{API}/webhooks", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert WebhookEndpoint.objects.count() == 1
    other = api.post(
        f"{API}/webhooks",
        {**body, "description": "x"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    is_problem(other, 409, "idempotency_key_reused")


def test_webhooks_are_listed_newest_first_with_a_cursor(api: APIClient) -> None:
    ids = [create(api, description=str(n)).json()["data"]["id"] for n in range(3)]
    page = api.get(f"{API}/webhooks", {"limit": 2}).json()
    assert [hook["id"] for hook in page["data"]] == ids[::-1][:2]
    rest = api.get(f"{API}/webhooks", {"limit": 2, "cursor": page["nextCursor"]})
    assert [hook["id"] for hook in rest.json()["data"]] == ids[:1]
    assert rest.json()["nextCursor"] is None


def test_the_delivery_log_filters_by_status(api: APIClient, tenant: Tenant) -> None:
    hook = create(api).json()["data"]
    endpoint = WebhookEndpoint.objects.get()
    events = [
        Event.objects.create(environment=tenant.test, type="asset.ready", data={})
        for _ in range(3)
    ]
    for event, status in zip(events, ["succeeded", "failed", "pending"], strict=True):
        WebhookDelivery.objects.create(
            environment=tenant.test, endpoint=endpoint, event=event, status=status
        )
    url = f"{API}/webhooks/{hook['id']}/deliveries"
    everything = api.get(url).json()
    assert [d["status"] for d in everything["data"]] == [
        "pending",
        "failed",
        "succeeded",
    ]
    failed = api.get(url, {"status": "failed"}).json()["data"]
    assert [d["eventId"] for d in failed] == [str(events[1].public_id)]
    is_problem(api.get(url, {"status": "lost"}), 400)
    page = api.get(url, {"limit": 1}).json()
    assert len(page["data"]) == 1 and page["nextCursor"]


def test_no_key_is_401(anon: APIClient) -> None:
    is_problem(anon.get(f"{API}/webhooks"), 401, "missing_api_key")
    is_problem(
        anon.post(f"{API}/webhooks", {"url": HOOK, "events": ["*"]}, format="json"),
        401,
    )


# ---------------------------------------------------------------- everyone else: 404

ROUTES: list[tuple[str, str, dict | None]] = [
    ("get", "/webhooks/{hook}", None),
    ("patch", "/webhooks/{hook}", {"description": "mine now"}),
    ("delete", "/webhooks/{hook}", None),
    ("post", "/webhooks/{hook}/rotate-secret", None),
    ("get", "/webhooks/{hook}/deliveries", None),
    ("get", "/webhooks/{hook}/deliveries/{delivery}", None),
    ("post", "/webhooks/{hook}/deliveries/{delivery}/retry", None),
]


@pytest.mark.parametrize("who", ["outsider", "other environment"])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    ROUTES,
    ids=[f"{m.upper()} {p}" for m, p, _ in ROUTES],
)
def test_every_webhook_route_is_404_for_everyone_else(
    tenant: Tenant,
    outsider: Tenant,
    who: str,
    method: str,
    path: str,
    body: dict | None,
) -> None:
    owner = tenant.client("test")
    hook = create(owner).json()["data"]
    endpoint = WebhookEndpoint.objects.get(public_id=hook["id"])
    event = Event.objects.create(environment=tenant.test, type="asset.ready", data={})
    delivery = WebhookDelivery.objects.create(
        environment=tenant.test, endpoint=endpoint, event=event, status="failed"
    )
    stranger = outsider.client("test") if who == "outsider" else tenant.client("live")
    url = API + path.format(hook=hook["id"], delivery=delivery.public_id)
    response = getattr(stranger, method)(url, body, format="json")
    is_problem(response, 404)

    endpoint.refresh_from_db()
    assert endpoint.description == "" and endpoint.secret == hook["secret"]
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert stranger.get(f"{API}/webhooks").json()["data"] == []
    # The owner still sees it all.
    assert owner.get(url if method == "get" else f"{API}/webhooks").status_code == 200


def test_a_delivery_of_another_endpoint_is_404(api: APIClient, tenant: Tenant) -> None:
    first = create(api).json()["data"]
    second = create(api).json()["data"]
    event = Event.objects.create(environment=tenant.test, type="asset.ready", data={})
    delivery = WebhookDelivery.objects.create(
        environment=tenant.test,
        endpoint=WebhookEndpoint.objects.get(public_id=first["id"]),
        event=event,
    )
    response = api.get(f"{API}/webhooks/{second['id']}/deliveries/{delivery.public_id}")
    is_problem(response, 404, "delivery_not_found")
