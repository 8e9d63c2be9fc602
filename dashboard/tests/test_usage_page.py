"""The usage page: a month's totals, its tables and its server-drawn bar charts."""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from calls.tests.test_usage import at, june_calls, make_call
from conftest import Tenant
from dashboard.templatetags.dashboard_tags import end_reason_words
from dashboard.views.usage import PLOT_HEIGHT, PLOT_TOP

pytestmark = pytest.mark.django_db

BAR = re.compile(r'<rect class="bar" ([^>]*)>')
ATTRIBUTE = re.compile(r'([\w-]+)="([^"]*)"')


def bars(html: str, chart: str) -> list[dict[str, str]]:
    """The bars of one chart, each as its attributes."""
    start = html.index(f'data-chart="{chart}"')
    svg = html[start : html.index("</svg>", start)]
    return [dict(ATTRIBUTE.findall(found)) for found in BAR.findall(svg)]


def stat(html: str, name: str) -> str:
    found = re.search(rf'data-testid="{name}">([^<]*)<', html)
    assert found, name
    return found.group(1)


def test_the_page_shows_the_months_totals_tables_and_bars(
    member: Client, tenant: Tenant
) -> None:
    june_calls(tenant.test)

    response = member.get("/dashboard/usage/", {"month": "2025-06"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "June 2025" in html
    assert stat(html, "total-calls") == "5"
    assert stat(html, "total-minutes") == "62.01"
    assert stat(html, "total-answered") == "3"
    directions = html[html.index('data-testid="by-direction"') :]
    assert re.search(
        r"Outgoing</td><td class=\"num\">3</td><td class=\"num\">61.51<", directions
    )
    assert re.search(
        r"Incoming</td><td class=\"num\">2</td><td class=\"num\">0.50<", directions
    )
    reasons = html[html.index('data-testid="by-end-reason"') :]
    reasons = reasons[: reasons.index("</table>")]
    for reason in ("completed", "remote_hangup", "busy", "missed", "max_duration"):
        words = escape(end_reason_words(reason))
        assert f'<td title="{reason}">{words}</td><td class="num">1<' in reasons
    assert 'title="declined"' not in reasons


def test_the_charts_draw_one_bar_per_day_scaled_to_a_round_maximum(
    member: Client, tenant: Tenant
) -> None:
    june_calls(tenant.test)

    html = member.get("/dashboard/usage/", {"month": "2025-06"}).content.decode()

    calls = bars(html, "calls")
    assert len(calls) == 30
    assert [bar["data-date"] for bar in calls][:3] == [
        "2025-06-01",
        "2025-06-02",
        "2025-06-03",
    ]
    by_day = {bar["data-date"]: bar for bar in calls}
    # 3 calls on the 2nd, 2 on the 4th, on an axis up to 5.
    assert 'data-axis-max="5"' in html
    assert float(by_day["2025-06-02"]["height"]) == PLOT_HEIGHT * 3 / 5
    assert float(by_day["2025-06-04"]["height"]) == PLOT_HEIGHT * 2 / 5
    assert float(by_day["2025-06-02"]["y"]) == PLOT_TOP + PLOT_HEIGHT * 2 / 5
    assert float(by_day["2025-06-01"]["height"]) == 0
    assert sum(1 for bar in calls if float(bar["height"]) > 0) == 2
    assert "Mon 2 Jun: 3 calls" in html

    minutes = {bar["data-date"]: bar for bar in bars(html, "minutes")}
    assert len(minutes) == 30
    # 2.01 min on the 2nd and 60 on the 4th, on an axis up to 100.
    assert float(minutes["2025-06-04"]["height"]) == PLOT_HEIGHT * 60 / 100
    assert float(minutes["2025-06-02"]["height"]) == round(PLOT_HEIGHT * 2.01 / 100, 2)


def test_by_default_it_shows_this_month(owner: Client, tenant: Tenant) -> None:
    now = timezone.now()
    first = datetime.combine(now.date().replace(day=1), datetime.min.time(), UTC)
    make_call(tenant.test, first, answered_after_ms=0, talked_ms=120_000)
    make_call(
        tenant.test,
        first - timedelta(milliseconds=1),
        answered_after_ms=0,
        talked_ms=60_000,
    )

    html = owner.get("/dashboard/usage/").content.decode()

    assert f"{now:%B %Y}" in html
    assert stat(html, "total-calls") == "1"
    assert stat(html, "total-minutes") == "2.00"
    assert len(bars(html, "calls")) == monthrange(now.year, now.month)[1]
    # This month has no next one to go to yet; the previous one is a link.
    assert 'rel="next"' not in html and 'rel="prev"' in html


def test_the_other_environment_and_another_account_are_not_counted(
    owner: Client, tenant: Tenant, outsider: Tenant
) -> None:
    june_calls(tenant.test)
    make_call(
        tenant.live, at("2025-06-02T10:00:00"), answered_after_ms=0, talked_ms=600_000
    )
    make_call(
        outsider.test, at("2025-06-02T11:00:00"), answered_after_ms=0, talked_ms=900_000
    )

    html = owner.get("/dashboard/usage/", {"month": "2025-06"}).content.decode()

    assert stat(html, "total-calls") == "5"
    assert stat(html, "total-minutes") == "62.01"

    owner.post("/dashboard/switch/", {"environment": str(tenant.live.public_id)})
    live = owner.get("/dashboard/usage/", {"month": "2025-06"}).content.decode()

    assert stat(live, "total-calls") == "1"
    assert stat(live, "total-minutes") == "10.00"
    assert (
        float(
            {bar["data-date"]: bar for bar in bars(live, "calls")}["2025-06-02"][
                "height"
            ]
        )
        == PLOT_HEIGHT
    )


def test_a_month_without_calls_says_so(member: Client) -> None:
    html = member.get("/dashboard/usage/", {"month": "2024-02"}).content.decode()

    assert stat(html, "total-calls") == "0"
    assert "No calls in February 2024." in html
    assert len(bars(html, "calls")) == 29
    assert all(float(bar["height"]) == 0 for bar in bars(html, "minutes"))


@pytest.mark.parametrize("month", ["2025-13", "June", "2025-6", "0000-01"])
def test_a_bad_month_is_refused_and_this_month_shown(
    member: Client, month: str
) -> None:
    response = member.get("/dashboard/usage/", {"month": month})

    assert response.status_code == 400
    html = response.content.decode()
    assert "is not a month: choose one as YYYY-MM." in html
    assert f"{timezone.now():%B %Y}" in html


def test_the_page_needs_a_login(client: Client) -> None:
    response = client.get("/dashboard/usage/")
    assert response.status_code == 302
    assert "/login" in response["Location"]


def test_the_page_has_no_inline_script(member: Client) -> None:
    html = member.get("/dashboard/usage/").content.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "/static/dashboard/css/usage.css" in html
