"""GET /api/v1/usage: calls and minutes per UTC day, by direction and end reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from openapi_schema_validator import OAS30Validator
from rest_framework.test import APIClient

from accounts.models import Environment
from calls.models import Call, CallState, Session
from calls.usage import usage_by_day
from conftest import Tenant, is_problem
from tests.api_schema.conftest import spelled_out

pytestmark = pytest.mark.django_db

JUNE = {"from": "2025-06-01", "to": "2025-06-05"}
NO_END_REASONS = {
    "completed": 0,
    "remoteHangup": 0,
    "rejected": 0,
    "declined": 0,
    "busy": 0,
    "noAnswer": 0,
    "missed": 0,
    "failed": 0,
    "sessionDisconnected": 0,
    "maxDuration": 0,
    "endedByStaff": 0,
    "clientGone": 0,
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def make_call(
    environment: Environment,
    created: datetime,
    *,
    direction: str = "outgoing",
    answered_after_ms: int | None = None,
    talked_ms: int | None = None,
    end_reason: str = "completed",
) -> Call:
    """A call row with exact times: created, answered ``answered_after_ms`` later and
    ended ``talked_ms`` after that (never answered: ended at once; no ``talked_ms``:
    still going)."""
    session = Session.objects.filter(environment=environment).first()
    if session is None:
        session = Session.objects.create(environment=environment, display_name="Line")
    answered = (
        None
        if answered_after_ms is None
        else created + timedelta(milliseconds=answered_after_ms)
    )
    ended = (
        None
        if answered is not None and talked_ms is None
        else (answered or created) + timedelta(milliseconds=talked_ms or 0)
    )
    call = Call.objects.create(
        environment=environment,
        session=session,
        peer_address="15550000001@s.whatsapp.net",
        direction=direction,
        state=CallState.ENDED if ended else CallState.ACTIVE,
        end_reason=end_reason if ended else "",
        answered_at=answered,
        ended_at=ended,
    )
    # created_at is set on insert; the figures count the day it says.
    Call.objects.filter(pk=call.pk).update(created_at=created)
    return call


def june_calls(environment: Environment) -> None:
    """Five calls over 2 to 4 June 2025, the first and last a millisecond from
    midnight, so each lands on its own UTC day."""
    make_call(
        environment,
        at("2025-06-02T09:00:00"),
        answered_after_ms=2_000,
        talked_ms=90_500,
    )
    make_call(
        environment,
        at("2025-06-02T23:59:59.999"),
        direction="incoming",
        answered_after_ms=1_000,
        talked_ms=30_000,
        end_reason="remote_hangup",
    )
    make_call(environment, at("2025-06-02T12:00:00"), end_reason="busy")
    make_call(
        environment,
        at("2025-06-04T00:00:00"),
        direction="incoming",
        end_reason="missed",
    )
    make_call(
        environment,
        at("2025-06-04T18:30:00"),
        answered_after_ms=500,
        talked_ms=3_600_000,
        end_reason="max_duration",
    )


def usage(client: APIClient, **query: str) -> dict[str, Any]:
    response = client.get("/api/v1/usage", query)
    assert response.status_code == 200, response.content
    return response.json()["data"]


def day(data: dict[str, Any], when: str) -> dict[str, Any]:
    return next(d for d in data["days"] if d["date"] == when)


def test_usage_counts_each_days_calls_and_minutes_exactly(tenant: Tenant) -> None:
    june_calls(tenant.test)

    data = usage(tenant.client(), **JUNE)

    assert (data["from"], data["to"], data["granularity"]) == (
        "2025-06-01",
        "2025-06-05",
        "day",
    )
    assert [d["date"] for d in data["days"]] == [
        "2025-06-01",
        "2025-06-02",
        "2025-06-03",
        "2025-06-04",
        "2025-06-05",
    ]
    second = day(data, "2025-06-02")
    assert second["calls"] == 3
    assert second["answeredCalls"] == 2
    # 90.5 s + 30 s = 120.5 s = 2.00833… min
    assert second["minutes"] == 2.01
    assert second["byDirection"] == {
        "outgoing": {"calls": 2, "minutes": 1.51},
        "incoming": {"calls": 1, "minutes": 0.5},
    }
    assert second["byEndReason"] == {
        **NO_END_REASONS,
        "completed": 1,
        "remoteHangup": 1,
        "busy": 1,
    }
    fourth = day(data, "2025-06-04")
    assert (fourth["calls"], fourth["answeredCalls"], fourth["minutes"]) == (2, 1, 60.0)
    assert fourth["byDirection"] == {
        "outgoing": {"calls": 1, "minutes": 60.0},
        "incoming": {"calls": 1, "minutes": 0.0},
    }
    assert fourth["byEndReason"] == {**NO_END_REASONS, "missed": 1, "maxDuration": 1}

    totals = data["totals"]
    assert (totals["calls"], totals["answeredCalls"], totals["minutes"]) == (
        5,
        3,
        62.01,
    )
    assert totals["byDirection"] == {
        "outgoing": {"calls": 3, "minutes": 61.51},
        "incoming": {"calls": 2, "minutes": 0.5},
    }
    assert totals["byEndReason"] == {
        **NO_END_REASONS,
        "completed": 1,
        "remoteHangup": 1,
        "busy": 1,
        "missed": 1,
        "maxDuration": 1,
    }


def test_days_without_calls_are_listed_with_zeros(tenant: Tenant) -> None:
    june_calls(tenant.test)

    data = usage(tenant.client(), **JUNE)

    for empty in ("2025-06-01", "2025-06-03", "2025-06-05"):
        assert day(data, empty) == {
            "date": empty,
            "calls": 0,
            "minutes": 0.0,
            "answeredCalls": 0,
            "byDirection": {
                "outgoing": {"calls": 0, "minutes": 0.0},
                "incoming": {"calls": 0, "minutes": 0.0},
            },
            "byEndReason": NO_END_REASONS,
        }


def test_calls_just_outside_the_range_are_not_counted(tenant: Tenant) -> None:
    june_calls(tenant.test)

    data = usage(tenant.client(), **{"from": "2025-06-03", "to": "2025-06-03"})

    assert [d["date"] for d in data["days"]] == ["2025-06-03"]
    assert data["totals"]["calls"] == 0
    # The 23:59:59.999 call of the 2nd and the midnight call of the 4th.
    assert (
        usage(tenant.client(), **{"from": "2025-06-03", "to": "2025-06-04"})["totals"][
            "calls"
        ]
        == 2
    )
    assert (
        usage(tenant.client(), **{"from": "2025-06-01", "to": "2025-06-02"})["totals"][
            "calls"
        ]
        == 3
    )


def test_a_call_still_going_counts_its_minutes_so_far(tenant: Tenant) -> None:
    started = timezone.now() - timedelta(minutes=10)
    make_call(tenant.test, started, answered_after_ms=0, talked_ms=None)
    ringing = make_call(tenant.test, started)
    Call.objects.filter(pk=ringing.pk).update(
        state=CallState.RINGING, ended_at=None, end_reason=""
    )

    today = started.date().isoformat()
    data = usage(
        tenant.client(), **{"from": today, "to": timezone.now().date().isoformat()}
    )

    assert data["totals"]["calls"] == 2
    assert data["totals"]["answeredCalls"] == 1
    assert 10.0 <= data["totals"]["minutes"] < 10.5
    # Not ended: no end reason yet.
    assert data["totals"]["byEndReason"] == NO_END_REASONS
    # Exactly so, at a given moment.
    figures = usage_by_day(
        tenant.test,
        start=started.date(),
        end=started.date(),
        now=started + timedelta(minutes=7, seconds=30),
    )
    assert figures.totals.minutes == 7.5
    assert figures.totals.in_progress_calls == 2


def test_without_dates_it_covers_this_month_up_to_today(tenant: Tenant) -> None:
    today = timezone.now().date()
    first = today.replace(day=1)
    make_call(
        tenant.test,
        datetime.combine(first, datetime.min.time(), tzinfo=UTC),
        answered_after_ms=0,
        talked_ms=60_000,
    )
    make_call(
        tenant.test,
        datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        - timedelta(milliseconds=1),
        answered_after_ms=0,
        talked_ms=60_000,
    )

    data = usage(tenant.client())

    assert data["from"] == first.isoformat()
    assert data["to"] == today.isoformat()
    assert len(data["days"]) == today.day
    assert data["days"][-1]["date"] == today.isoformat()
    assert (data["totals"]["calls"], data["totals"]["minutes"]) == (1, 1.0)


def test_with_only_to_it_covers_that_month_up_to_to(tenant: Tenant) -> None:
    june_calls(tenant.test)

    data = usage(tenant.client(), to="2025-06-03")

    assert (data["from"], data["to"], len(data["days"])) == (
        "2025-06-01",
        "2025-06-03",
        3,
    )
    assert data["totals"]["calls"] == 3


def test_a_range_may_span_366_days(tenant: Tenant) -> None:
    june_calls(tenant.test)

    data = usage(tenant.client(), **{"from": "2024-07-01", "to": "2025-07-01"})

    assert len(data["days"]) == 366
    assert data["totals"]["calls"] == 5


@pytest.mark.parametrize(
    ("query", "code", "param"),
    [
        ({"from": "2025-13-01"}, "validation_error", "from"),
        ({"from": "01/06/2025"}, "validation_error", "from"),
        ({"from": ""}, "validation_error", "from"),
        ({"to": "2025-06-31"}, "validation_error", "to"),
        ({"to": "yesterday"}, "validation_error", "to"),
        ({"from": "2025-06-05", "to": "2025-06-04"}, "invalid_range", "from"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, "invalid_range", "to"),
        ({"granularity": "week"}, "validation_error", "granularity"),
        ({"granularity": "hour", **JUNE}, "validation_error", "granularity"),
        ({"sessionId": "x"}, "unknown_parameter", "sessionId"),
        ({"start": "2025-06-01"}, "unknown_parameter", "start"),
    ],
)
def test_a_bad_query_is_a_problem_naming_the_parameter(
    tenant: Tenant, query: dict[str, str], code: str, param: str
) -> None:
    body = is_problem(tenant.client().get("/api/v1/usage", query), 400, code)
    assert body["param"] == param


def test_granularity_day_is_accepted(tenant: Tenant) -> None:
    assert usage(tenant.client(), granularity="day", **JUNE)["granularity"] == "day"


def test_usage_needs_an_api_key(anon: APIClient) -> None:
    is_problem(anon.get("/api/v1/usage"), 401)


def test_another_account_and_the_other_environment_see_none_of_the_calls(
    tenant: Tenant, outsider: Tenant
) -> None:
    june_calls(tenant.test)
    make_call(
        outsider.test, at("2025-06-02T10:00:00"), answered_after_ms=0, talked_ms=600_000
    )

    mine = usage(tenant.client("test"), **JUNE)
    live = usage(tenant.client("live"), **JUNE)
    theirs = usage(outsider.client("test"), **JUNE)
    their_live = usage(outsider.client("live"), **JUNE)

    assert (mine["totals"]["calls"], mine["totals"]["minutes"]) == (5, 62.01)
    assert live["totals"]["calls"] == 0
    assert all(d["calls"] == 0 for d in live["days"])
    assert (theirs["totals"]["calls"], theirs["totals"]["minutes"]) == (1, 10.0)
    assert their_live["totals"]["calls"] == 0


def test_the_figures_cost_the_same_queries_however_many_calls(
    tenant: Tenant,
) -> None:
    client = tenant.client()
    june_calls(tenant.test)
    usage(client, **JUNE)  # the key's first use of the minute also records it

    def counted() -> int:
        with CaptureQueriesContext(connection) as queries:
            usage(client, **JUNE)
        return len(queries)

    few = counted()
    for n in range(20):
        make_call(
            tenant.test,
            at("2025-06-03T08:00:00") + timedelta(minutes=n),
            answered_after_ms=0,
            talked_ms=1_000,
        )
    assert counted() == few


def test_the_response_is_what_the_schema_says(tenant: Tenant) -> None:
    june_calls(tenant.test)
    schema = yaml.safe_load(Client().get("/api/v1/schema").content)
    operation = schema["paths"]["/api/v1/usage"]["get"]
    assert operation["operationId"] == "getUsage"
    assert operation["tags"] == ["Usage"]
    assert {p["name"] for p in operation["parameters"]} == {
        "from",
        "to",
        "granularity",
    }
    declared = operation["responses"]["200"]["content"]["application/json"]["schema"]
    validator = OAS30Validator(
        {"components": spelled_out(schema["components"]), **declared}
    )

    validator.validate(tenant.client().get("/api/v1/usage", JUNE).json())
    example = schema["components"]["schemas"]["UsageEnvelope"]["example"]
    validator.validate(example)
    assert example["data"]["totals"]["calls"] == 7
    problems = operation["responses"]["400"]["description"]
    for code in ("validation_error", "invalid_range", "unknown_parameter"):
        assert f"`{code}`" in problems


def test_a_day_is_a_utc_day(tenant: Tenant) -> None:
    # 01:30 in UTC+2 on the 3rd is still the 2nd in UTC.
    from zoneinfo import ZoneInfo

    local = datetime(2025, 6, 3, 1, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    make_call(tenant.test, local, answered_after_ms=0, talked_ms=60_000)

    data = usage(tenant.client(), **JUNE)

    assert day(data, "2025-06-02")["calls"] == 1
    assert day(data, "2025-06-03")["calls"] == 0
