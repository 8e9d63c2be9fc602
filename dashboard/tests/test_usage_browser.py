"""The usage page in Chromium: the month's charts drawn, one bar per day, under the CSP."""

from __future__ import annotations

from calendar import monthrange
from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import timezone

from calls.tests.test_usage import make_call
from conftest import Tenant
from dashboard.tests.conftest import PASSWORD, Tab, make_user
from dashboard.tests.test_browser import log_in


@pytest.mark.browser
@pytest.mark.usefixtures("transactional_db")
def test_the_usage_page_draws_this_months_calls_and_minutes(
    tab: Tab, tenant: Tenant
) -> None:
    owner = make_user("usage-owner", tenant, "owner")
    now = timezone.now()
    first = datetime.combine(now.date().replace(day=1), datetime.min.time(), UTC)
    make_call(tenant.test, first, answered_after_ms=0, talked_ms=120_000)
    make_call(tenant.test, first, answered_after_ms=0, talked_ms=60_000)
    tab.do(log_in, owner.username, PASSWORD)

    def drawn(page: Any) -> dict[str, Any]:
        page.goto("/dashboard/usage/")
        page.get_by_role("link", name="Usage").first.wait_for()
        return page.evaluate(
            """() => {
              const bars = (name) => [...document.querySelectorAll(
                `svg[data-chart=${name}] rect.bar`)];
              const first = (name) => bars(name).find(
                (bar) => bar.dataset.date.endsWith("-01"));
              return {
                calls: bars("calls").length,
                minutes: bars("minutes").length,
                firstCalls: first("calls").dataset.value,
                firstMinutes: first("minutes").dataset.value,
                firstHeight: first("calls").getBoundingClientRect().height,
                scrolls: document.documentElement.scrollWidth > window.innerWidth,
              };
            }"""
        )

    shown = tab.do(drawn)
    days = monthrange(now.year, now.month)[1]
    assert shown["calls"] == shown["minutes"] == days
    assert float(shown["firstCalls"]) == 2
    assert float(shown["firstMinutes"]) == 3
    assert shown["firstHeight"] > 0  # drawn, not only in the markup
    assert shown["scrolls"] is False
