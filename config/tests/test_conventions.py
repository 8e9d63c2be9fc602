from __future__ import annotations

import threading

import pytest
from django.db import connection

from accounts.models import ApiKey
from config.api import ratelimit
from config.tests import urls as test_urls
from conftest import Tenant, is_problem

pytestmark = [pytest.mark.django_db, pytest.mark.urls("config.tests.urls")]

URL = "/api/v1/keys"


def test_same_idempotency_key_and_body_replays_the_first_response(
    tenant: Tenant,
) -> None:
    client = tenant.client()
    first = client.post(URL, {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post(URL, {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert ApiKey.objects.filter(environment=tenant.test, name="a").count() == 1


def test_reusing_a_key_with_a_different_body_is_409(tenant: Tenant) -> None:
    client = tenant.client()
    client.post(URL, {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    response = client.post(URL, {"name": "b"}, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    is_problem(response, 409, "idempotency_key_reused")
    assert not ApiKey.objects.filter(name="b").exists()


def test_idempotency_keys_are_per_environment(tenant: Tenant, outsider: Tenant) -> None:
    for client in (
        tenant.client("test"),
        tenant.client("live"),
        outsider.client("test"),
    ):
        assert (
            client.post(
                URL, {"name": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
            ).status_code
            == 201
        )
    assert ApiKey.objects.filter(name="x").count() == 3


def test_without_a_key_every_post_creates(tenant: Tenant) -> None:
    client = tenant.client()
    client.post(URL, {"name": "n"}, format="json")
    client.post(URL, {"name": "n"}, format="json")
    assert ApiKey.objects.filter(name="n").count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_is_409_in_progress(tenant: Tenant) -> None:
    test_urls.gate.clear()
    results: list[int] = []

    def slow() -> None:
        try:
            response = tenant.client().post(
                URL, {"name": "slow"}, format="json", HTTP_IDEMPOTENCY_KEY="k3"
            )
            results.append(response.status_code)
        finally:
            connection.close()

    worker = threading.Thread(target=slow)
    worker.start()
    try:
        for _ in range(200):
            from accounts.models import IdempotencyRecord

            if IdempotencyRecord.objects.filter(key="k3").exists():
                break
            threading.Event().wait(0.01)
        response = tenant.client().post(
            URL, {"name": "slow"}, format="json", HTTP_IDEMPOTENCY_KEY="k3"
        )
        is_problem(response, 409, "idempotency_request_in_progress")
    finally:
        test_urls.gate.set()
        worker.join(10)
    assert results == [201]
    assert ApiKey.objects.filter(name="slow").count() == 1


def test_a_key_let_go_between_our_insert_and_our_look_is_taken_not_a_500(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race that used to answer 500: our insert collides with a request holding the
    key, which then fails and lets the key go before we look it up. We take the key."""
    from django.db import IntegrityError

    from accounts.models import IdempotencyRecord

    real_create = IdempotencyRecord.objects.create
    collided: list[bool] = []

    def create(**fields: object) -> IdempotencyRecord:
        if not collided:
            collided.append(True)  # the other request held it, and let it go since
            raise IntegrityError("duplicate key value violates unique constraint")
        return real_create(**fields)

    monkeypatch.setattr(IdempotencyRecord.objects, "create", create)
    response = tenant.client().post(
        URL, {"name": "raced"}, format="json", HTTP_IDEMPOTENCY_KEY="k-race"
    )
    assert response.status_code == 201, response.content
    assert collided and ApiKey.objects.filter(name="raced").count() == 1


def test_cursor_pagination_is_newest_first_and_complete(tenant: Tenant) -> None:
    client = tenant.client()
    for index in range(7):
        client.post(URL, {"name": f"p{index}"}, format="json")
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get(URL, query).json()
        seen += [item["name"] for item in body["data"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}" for i in range(6, -1, -1)] + ["tests"]


@pytest.mark.parametrize("limit", ["0", "101", "abc"])
def test_bad_limit_is_a_problem_naming_limit(tenant: Tenant, limit: str) -> None:
    body = is_problem(
        tenant.client().get(URL, {"limit": limit}), 400, "validation_error"
    )
    assert body["param"] == "limit"


def test_bad_cursor_is_a_problem(tenant: Tenant) -> None:
    is_problem(tenant.client().get(URL, {"cursor": "garbage!"}), 400, "invalid_cursor")


def test_rate_limit_answers_429_with_retry_after(tenant: Tenant, settings) -> None:
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    client = tenant.client()
    statuses = [client.get(URL).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = client.get(URL)
    is_problem(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    # Limits are per key: the same account's other environment is unaffected.
    assert tenant.client("live").get(URL).status_code == 200


def test_rate_limiter_uses_redis_when_configured(settings) -> None:
    if not settings.REDIS_URL:
        count_a, _ = ratelimit.hit("probe-local")
        count_b, left = ratelimit.hit("probe-local")
        assert (count_a + 1, 0 < left <= 60) == (count_b, True)
        return
    import redis

    key = "probe-redis"
    ratelimit.hit(key)
    stored = redis.Redis.from_url(settings.REDIS_URL).get(
        f"{settings.REDIS_KEY_PREFIX}:rl:{key}"
    )
    assert stored == b"1"
