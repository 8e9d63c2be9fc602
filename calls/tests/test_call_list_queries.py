"""A page of calls costs the same queries however many of its calls have recordings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from calls.models import Call
from conftest import Tenant
from recordings.models import Recording
from recordings.tests.conftest import ended_call

pytestmark = pytest.mark.django_db

KINDS = ("inbound", "outbound", "mixed")


def recorded(tenant: Tenant) -> Call:
    call = ended_call(tenant.test)
    for n, kind in enumerate(KINDS):
        Recording.objects.create(
            environment=tenant.test,
            call=call,
            kind=kind,
            file_name=f"calls/{call.public_id}/{kind}.wav",
            duration_ms=1000 + n,
            size_bytes=32_044,
            expires_at=timezone.now() + timedelta(days=30),
        )
    return call


def listed(api: APIClient) -> tuple[int, list[dict]]:
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/api/v1/calls", {"limit": 50})
    assert response.status_code == 200, response.content
    return len(queries), response.json()["data"]


def test_listing_more_recorded_calls_costs_no_more_queries(
    tenant: Tenant, api: APIClient
) -> None:
    calls = [recorded(tenant) for _ in range(2)]
    listed(api)  # the key's first use of the minute also records it
    few_queries, few = listed(api)
    calls += [recorded(tenant) for _ in range(6)]
    many_queries, many = listed(api)

    assert len(few) == 2 and len(many) == 8
    assert many_queries == few_queries
    by_id = {item["callId"]: item for item in many}
    for call in calls:
        summaries = by_id[str(call.public_id)]["recordings"]
        ids = list(
            Recording.objects.filter(call=call)
            .order_by("pk")
            .values_list("public_id", flat=True)
        )
        assert [s["recordingId"] for s in summaries] == [str(i) for i in ids]
        assert [s["kind"] for s in summaries] == list(KINDS)
        assert [s["durationMs"] for s in summaries] == [1000, 1001, 1002]


def test_an_expired_recording_is_left_out_of_the_list(
    tenant: Tenant, api: APIClient
) -> None:
    call = recorded(tenant)
    Recording.objects.filter(call=call, kind="inbound").update(
        created_at=timezone.now() - timedelta(days=2),
        expires_at=timezone.now() - timedelta(days=1),
    )
    _, [item] = listed(api)
    assert [s["kind"] for s in item["recordings"]] == ["outbound", "mixed"]
