"""Webhook deliveries to a real HTTP receiver on loopback, verified with `standardwebhooks`.

Attempts run in this process (the embedded default: ``fast_retries`` forces it in both
shapes); test_worker.py proves the same through a real Celery worker.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from calls.tests.conftest import wait_for
from conftest import Tenant, is_problem
from events import delivery
from events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from events.tests.conftest import API, Receiver, Reply, create_webhook, settled

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_retries"),
]


def new_session(client: APIClient, name: str = "Line") -> str:
    response = client.post(f"{API}/sessions", {"displayName": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]["sessionId"]


def deliveries_of(client: APIClient, webhook_id: str, **params: Any) -> list[dict]:
    response = client.get(f"{API}/webhooks/{webhook_id}/deliveries", params)
    assert response.status_code == 200, response.content
    return response.json()["data"]


def test_a_delivery_is_signed_per_standard_webhooks_and_carries_the_envelope(
    api: APIClient, receiver: Receiver
) -> None:
    hook = create_webhook(api, receiver.url, ["session.created"])
    session_id = new_session(api)

    [request] = receiver.wait_for(1)
    payload = Webhook(hook["secret"]).verify(request.body, request.headers)
    event = Event.objects.get(type="session.created", session_public_id=session_id)
    assert payload == {
        "id": str(event.public_id),
        "type": "session.created",
        "createdAt": payload["createdAt"],
        "sessionId": session_id,
        "data": event.data,
    }
    assert payload["createdAt"].endswith("Z")
    assert request.headers["webhook-id"] == str(event.public_id)
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.path == "/hooks"

    [done] = wait_for(settled(hook["id"]))
    assert done.status == "succeeded"
    [logged] = deliveries_of(api, hook["id"])
    assert logged["status"] == "succeeded"
    assert logged["eventId"] == str(event.public_id)
    assert logged["eventType"] == "session.created"
    assert logged["attemptCount"] == 1
    [attempt] = logged["attempts"]
    assert attempt["attempt"] == 1 and attempt["succeeded"] is True
    assert attempt["statusCode"] == 200 and attempt["error"] == ""
    assert attempt["latencyMs"] >= 0 and attempt["nextRetryAt"] is None
    assert attempt["responseBody"] == "ok"


def test_a_signature_made_with_another_secret_does_not_verify(
    api: APIClient, receiver: Receiver
) -> None:
    create_webhook(api, receiver.url, ["session.created"])
    new_session(api)
    [request] = receiver.wait_for(1)
    other = Webhook("whsec_" + "QUJD" * 11)
    with pytest.raises(WebhookVerificationError):
        other.verify(request.body, request.headers)


def test_only_subscribed_event_types_are_delivered(
    api: APIClient, receiver: Receiver
) -> None:
    narrow = create_webhook(api, receiver.url + "/narrow", ["connection.state"])
    everything = create_webhook(api, receiver.url + "/all", ["*"])
    session_id = new_session(api)
    api.post(f"{API}/sessions/{session_id}/connect")

    wait_for(settled(everything["id"], count=2))
    wait_for(settled(narrow["id"], count=1))
    by_path: dict[str, list[str]] = {}
    for request in receiver.requests:
        by_path.setdefault(request.path, []).append(request.envelope["type"])
    assert by_path["/hooks/narrow"] == ["connection.state"] * len(
        by_path["/hooks/narrow"]
    )
    assert "session.created" in by_path["/hooks/all"]
    assert "connection.state" in by_path["/hooks/all"]


def test_a_receiver_that_fails_twice_gets_three_attempts_with_growing_delays(
    api: APIClient, receiver: Receiver
) -> None:
    receiver.answer(Reply(500), Reply(503))
    hook = create_webhook(api, receiver.url, ["session.created"])
    new_session(api)

    requests = receiver.wait_for(3)
    [done] = wait_for(settled(hook["id"]))
    assert done.status == "succeeded" and done.attempt_count == 3
    ids = {request.headers["webhook-id"] for request in requests}
    assert ids == {str(done.event.public_id)}, "webhook-id is constant across retries"
    for request in requests:
        Webhook(hook["secret"]).verify(request.body, request.headers)
    first_gap = requests[1].at - requests[0].at
    second_gap = requests[2].at - requests[1].at
    # base 0.2 s ±10 %, then 0.4 s ±10 %
    assert 0.17 <= first_gap < 0.6, first_gap
    assert second_gap > first_gap and second_gap >= 0.35, (first_gap, second_gap)

    [logged] = deliveries_of(api, hook["id"])
    attempts = logged["attempts"]
    assert [a["statusCode"] for a in attempts] == [500, 503, 200]
    assert [a["succeeded"] for a in attempts] == [False, False, True]
    assert attempts[0]["error"] == "The receiver answered HTTP 500."
    assert attempts[0]["nextRetryAt"] and attempts[1]["nextRetryAt"]
    assert attempts[2]["nextRetryAt"] is None


def test_retries_stop_at_the_retry_window_and_the_delivery_fails(
    api: APIClient, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_RETRY_WINDOW_S = 4.5
    receiver.answer(*[Reply(500)] * 20)
    hook = create_webhook(api, receiver.url, ["session.created"])
    new_session(api)

    [done] = wait_for(settled(hook["id"]), timeout=20)
    assert done.status == "failed"
    # Retries 0.2, 0.4, 0.8 and 1.6 s apart (±10 %) are planned by 3.0 s, inside the
    # 4.5 s window even when a busy machine runs each late; the next, 3.2 s later
    # (6.2 s), would not be.
    assert done.attempt_count == 5
    assert done.next_attempt_at is None and done.completed_at is not None
    assert done.last_status_code == 500
    time.sleep(0.5)
    assert len(receiver.requests) == 5


def test_retry_after_is_honoured(api: APIClient, receiver: Receiver) -> None:
    receiver.answer(Reply(429, headers={"Retry-After": "1"}))
    hook = create_webhook(api, receiver.url, ["session.created"])
    new_session(api)

    first, second = receiver.wait_for(2, timeout=10)
    assert second.at - first.at >= 0.95, "the retry came before Retry-After"
    [done] = wait_for(settled(hook["id"]))
    assert done.status == "succeeded" and done.attempt_count == 2


def test_410_gone_disables_the_endpoint_and_stops(
    api: APIClient, receiver: Receiver
) -> None:
    receiver.answer(Reply(410))
    hook = create_webhook(api, receiver.url, ["*"])
    session_id = new_session(api)

    [done] = wait_for(settled(hook["id"]))
    assert done.status == "failed" and done.attempt_count == 1
    shown = api.get(f"{API}/webhooks/{hook['id']}").json()["data"]
    assert shown["enabled"] is False and shown["disabledReason"] == "gone"

    api.post(f"{API}/sessions/{session_id}/connect")
    time.sleep(0.5)
    assert len(receiver.requests) == 1, "a disabled endpoint received more"
    assert WebhookDelivery.objects.filter(endpoint__public_id=hook["id"]).count() == 1

    enabled = api.patch(
        f"{API}/webhooks/{hook['id']}", {"enabled": True}, format="json"
    ).json()["data"]
    assert enabled["enabled"] is True and enabled["disabledReason"] is None
    api.post(f"{API}/sessions/{session_id}/disconnect")
    receiver.wait_for(2)


@pytest.mark.parametrize("status", [400, 401, 404, 302])
def test_other_4xx_and_redirects_fail_without_retry(
    api: APIClient, receiver: Receiver, status: int
) -> None:
    headers = {"Location": receiver.url + "/elsewhere"} if status == 302 else {}
    receiver.answer(Reply(status, headers=headers))
    hook = create_webhook(api, receiver.url, ["session.created"])
    new_session(api)

    [done] = wait_for(settled(hook["id"]))
    assert done.status == "failed" and done.attempt_count == 1
    assert done.last_status_code == status
    time.sleep(0.5)
    assert [r.path for r in receiver.requests] == ["/hooks"], "retried or redirected"
    if status == 302:
        assert "Redirects are not followed" in done.last_error


def test_a_timeout_is_retried(
    api: APIClient, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_TIMEOUT_S = 0.3
    receiver.answer(Reply(200, delay=1.0))
    hook = create_webhook(api, receiver.url, ["session.created"])
    new_session(api)

    [done] = wait_for(settled(hook["id"]), timeout=10)
    assert done.status == "succeeded" and done.attempt_count == 2
    first = WebhookAttempt.objects.get(delivery=done, number=1)
    assert not first.succeeded and first.status_code is None
    assert first.error == "No response within 0.3 s."


def test_a_refused_connection_is_retried(
    api: APIClient, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_RETRY_WINDOW_S = 0.5
    dead = Receiver()
    url = dead.url
    dead.close()  # nothing listens on that port any more
    hook = create_webhook(api, url, ["session.created"])
    new_session(api)

    [done] = wait_for(settled(hook["id"]), timeout=10)
    assert done.status == "failed" and done.attempt_count == 2
    first = WebhookAttempt.objects.get(delivery=done, number=1)
    assert first.error.startswith("ConnectError") and first.next_retry_at is not None


def test_rotating_the_secret_signs_with_both_during_the_overlap(
    api: APIClient, receiver: Receiver, settings: Any
) -> None:
    hook = create_webhook(api, receiver.url, ["session.created"])
    old_secret = hook["secret"]
    rotated = api.post(f"{API}/webhooks/{hook['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.content
    new_secret = rotated.json()["data"]["secret"]
    assert new_secret.startswith("whsec_") and new_secret != old_secret
    assert rotated.json()["data"]["secretRotatedAt"]
    assert "secret" not in api.get(f"{API}/webhooks/{hook['id']}").json()["data"]

    new_session(api, "during overlap")
    [request] = receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old_secret).verify(request.body, request.headers)
    Webhook(new_secret).verify(request.body, request.headers)

    # Once the overlap is over, only the new secret signs.
    WebhookEndpoint.objects.filter(public_id=hook["id"]).update(
        previous_secret_expires_at=WebhookEndpoint.objects.get(
            public_id=hook["id"]
        ).secret_rotated_at
    )
    new_session(api, "after overlap")
    _, later = receiver.wait_for(2)
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    Webhook(new_secret).verify(later.body, later.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(later.body, later.headers)


def test_the_overlap_lasts_as_configured(
    api: APIClient, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_SECRET_OVERLAP_S = 3600
    hook = create_webhook(api, receiver.url, ["session.created"])
    api.post(f"{API}/webhooks/{hook['id']}/rotate-secret")
    endpoint = WebhookEndpoint.objects.get(public_id=hook["id"])
    assert endpoint.secret_rotated_at is not None
    assert endpoint.previous_secret_expires_at is not None
    overlap = endpoint.previous_secret_expires_at - endpoint.secret_rotated_at
    assert overlap.total_seconds() == 3600


def test_a_failed_delivery_can_be_retried_through_the_api(
    api: APIClient, receiver: Receiver
) -> None:
    receiver.answer(Reply(400))
    hook = create_webhook(api, receiver.url, ["session.created"])
    new_session(api)
    [failed] = wait_for(settled(hook["id"]))
    assert failed.status == "failed"

    url = f"{API}/webhooks/{hook['id']}/deliveries/{failed.public_id}/retry"
    response = api.post(url)
    assert response.status_code == 202, response.content
    assert response.json()["data"]["status"] == "pending"
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    wait_for(settled(hook["id"], statuses=("succeeded",)))
    shown = api.get(
        f"{API}/webhooks/{hook['id']}/deliveries/{failed.public_id}"
    ).json()["data"]
    assert shown["status"] == "succeeded" and shown["attemptCount"] == 2
    assert [a["manual"] for a in shown["attempts"]] == [False, True]
    assert [a["statusCode"] for a in shown["attempts"]] == [400, 200]


def test_retrying_a_delivery_of_a_disabled_endpoint_is_a_conflict(
    api: APIClient, receiver: Receiver
) -> None:
    receiver.answer(Reply(410))
    hook = create_webhook(api, receiver.url, ["session.created"])
    new_session(api)
    [failed] = wait_for(settled(hook["id"]))
    response = api.post(
        f"{API}/webhooks/{hook['id']}/deliveries/{failed.public_id}/retry"
    )
    is_problem(response, 409, "webhook_disabled")


def test_an_attempt_is_sent_at_most_once_however_often_its_task_runs(
    api: APIClient, receiver: Receiver, settings: Any
) -> None:
    hook = create_webhook(api, receiver.url, ["session.created"])
    endpoint = WebhookEndpoint.objects.get(public_id=hook["id"])
    # Fan-out without queueing, then run attempt 1 from two threads and a third time.
    settings.WEBHOOK_LOCAL_WORKERS = 1
    endpoint.enabled = False
    endpoint.save()
    new_session(api)
    endpoint.enabled = True
    endpoint.save()
    event = Event.objects.get(type="session.created")
    pending = WebhookDelivery.objects.create(
        environment=endpoint.environment, endpoint=endpoint, event=event
    )

    import threading

    results: list[Any] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(delivery.attempt(str(pending.public_id), 1))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.append(delivery.attempt(str(pending.public_id), 1))

    assert len(receiver.wait_for(1)) == 1
    time.sleep(0.3)
    assert len(receiver.requests) == 1
    assert sum(result is not None for result in results) == 1
    assert WebhookAttempt.objects.filter(delivery=pending).count() == 1


def test_the_sweep_closes_an_interrupted_attempt_and_sends_the_next(
    api: APIClient, receiver: Receiver, settings: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    hook = create_webhook(api, receiver.url, ["session.created"])
    endpoint = WebhookEndpoint.objects.get(public_id=hook["id"])
    endpoint.enabled = False
    endpoint.save()
    new_session(api)
    endpoint.enabled = True
    endpoint.save()
    long_ago = timezone.now() - timedelta(hours=1)
    # A worker took attempt 1 an hour ago and died before it finished.
    stuck = WebhookDelivery.objects.create(
        environment=endpoint.environment,
        endpoint=endpoint,
        event=Event.objects.get(type="session.created"),
        attempt_count=1,
    )
    WebhookAttempt.objects.create(delivery=stuck, number=1, started_at=long_ago)

    assert delivery.sweep() >= 1
    [request] = receiver.wait_for(1)
    Webhook(hook["secret"]).verify(request.body, request.headers)
    [done] = wait_for(settled(hook["id"]))
    assert done.status == "succeeded" and done.attempt_count == 2
    first = WebhookAttempt.objects.get(delivery=done, number=1)
    assert "interrupted" in first.error and first.finished_at is not None


def test_the_sweep_queues_a_delivery_whose_task_was_lost(
    api: APIClient, receiver: Receiver
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    hook = create_webhook(api, receiver.url, ["session.created"])
    endpoint = WebhookEndpoint.objects.get(public_id=hook["id"])
    endpoint.enabled = False
    endpoint.save()
    new_session(api)
    endpoint.enabled = True
    endpoint.save()
    lost = WebhookDelivery.objects.create(
        environment=endpoint.environment,
        endpoint=endpoint,
        event=Event.objects.get(type="session.created"),
        next_attempt_at=timezone.now() - timedelta(minutes=5),
    )
    assert delivery.sweep() == 1
    receiver.wait_for(1)
    [done] = wait_for(settled(hook["id"]))
    assert done.pk == lost.pk and done.status == "succeeded"


def test_a_slow_receiver_never_slows_the_api(
    api: APIClient, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_TIMEOUT_S = 5.0
    receiver.answer(*[Reply(200, delay=2.0)] * 3)
    create_webhook(api, receiver.url, ["*"])
    started = time.monotonic()
    session_id = new_session(api)
    api.post(f"{API}/sessions/{session_id}/connect")
    assert time.monotonic() - started < 1.0, "the API waited for the receiver"
    receiver.wait_for(2, timeout=10)


def _resolve_as(
    monkeypatch: pytest.MonkeyPatch, table: dict[str, str]
) -> dict[str, str]:
    import socket

    real = socket.getaddrinfo

    def fake(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host in table:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return table


def test_the_url_is_checked_again_before_each_attempt(
    api: APIClient, receiver: Receiver, settings: Any
) -> None:
    hook = create_webhook(api, receiver.url, ["session.created"])
    # Production rules from now on: the saved loopback URL must not be called.
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE = False
    new_session(api)

    [done] = wait_for(settled(hook["id"]))
    assert done.status == "failed" and done.attempt_count == 1
    assert "loopback" in done.last_error
    time.sleep(0.3)
    assert receiver.requests == []


def test_a_name_that_rebinds_to_loopback_after_creation_is_not_called(
    api: APIClient,
    receiver: Receiver,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = _resolve_as(monkeypatch, {"hooks.example.com": "93.184.215.14"})
    settings.WEBHOOK_ALLOW_PRIVATE = False
    hook = create_webhook(
        api, f"http://hooks.example.com:{receiver.port}/hooks", ["session.created"]
    )
    table["hooks.example.com"] = "127.0.0.1"  # the DNS answer changes
    new_session(api)

    [done] = wait_for(settled(hook["id"]))
    assert done.status == "failed" and "127.0.0.1" in done.last_error
    assert receiver.requests == []


def test_the_attempt_connects_to_the_checked_address_under_its_own_name(
    api: APIClient, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _resolve_as(monkeypatch, {"receiver.test": "127.0.0.1"})
    hook = create_webhook(
        api, f"http://receiver.test:{receiver.port}/hooks?x=1", ["session.created"]
    )
    new_session(api)
    [request] = receiver.wait_for(1)
    assert request.headers["host"] == f"receiver.test:{receiver.port}"
    assert request.path == "/hooks?x=1"
    Webhook(hook["secret"]).verify(request.body, request.headers)


def test_other_tenants_and_environments_never_receive_the_events(
    tenant: Tenant, outsider: Tenant, receiver: Receiver
) -> None:
    owner = tenant.client("test")
    mine = create_webhook(owner, receiver.url + "/owner", ["*"])
    create_webhook(tenant.client("live"), receiver.url + "/live", ["*"])
    create_webhook(outsider.client("test"), receiver.url + "/outsider", ["*"])
    create_webhook(outsider.client("live"), receiver.url + "/outsider-live", ["*"])

    session_id = new_session(owner)
    owner.post(f"{API}/sessions/{session_id}/connect")
    wait_for(settled(mine["id"], count=2))
    time.sleep(0.3)
    assert {request.path for request in receiver.requests} == {"/hooks/owner"}
    assert WebhookDelivery.objects.exclude(endpoint__public_id=mine["id"]).count() == 0
