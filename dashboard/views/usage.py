"""Usage: a month's calls and minutes per day, drawn as SVG bar charts by the server."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from calls.models import Direction, EndReason
from calls.usage import DayUsage, month_range, usage_by_day
from dashboard.views.pages import page
from dashboard.workspace import Workspace, dashboard_view

MONTH = re.compile(r"^(\d{4})-(\d{2})$")

# The charts' drawing box (SVG user units); the browser scales it to the page's width.
WIDTH = 760
PLOT_LEFT = 44
PLOT_TOP = 10
PLOT_HEIGHT = 140
HEIGHT = PLOT_TOP + PLOT_HEIGHT + 26


@dataclass(frozen=True)
class Bar:
    day: date
    value: float
    label: str
    x: float
    y: float
    width: float
    height: float

    @property
    def center(self) -> float:
        return round(self.x + self.width / 2, 2)


@dataclass(frozen=True)
class Tick:
    value: float
    label: str
    y: float


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    bars: list[Bar]
    ticks: list[Tick]
    axis_max: float
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = PLOT_LEFT
    plot_right: int = WIDTH
    plot_bottom: int = PLOT_TOP + PLOT_HEIGHT
    label_y: int = HEIGHT - 8


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power + 1e-9:
            return step * power
    return 10 * power


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"


def bar_chart(
    name: str,
    title: str,
    unit: str,
    days: list[DayUsage],
    values: list[float],
    *,
    counts: bool = False,
) -> Chart:
    """Bars of ``values`` (one per day) on an axis from 0 to a round maximum; an axis
    of ``counts`` has no fractional gridline (no "2.5 calls")."""
    axis_max = nice_ceiling(max(values, default=0))
    slot = (WIDTH - PLOT_LEFT) / max(len(values), 1)
    bars = []
    for n, (day, value) in enumerate(zip(days, values, strict=True)):
        height = round(value / axis_max * PLOT_HEIGHT, 2)
        when = f"{day.day:%a} {day.day.day} {day.day:%b}"
        bars.append(
            Bar(
                day=day.day,
                value=value,
                label=f"{when}: {_number(value)} {unit}",
                x=round(PLOT_LEFT + n * slot + slot * 0.15, 2),
                y=round(PLOT_TOP + PLOT_HEIGHT - height, 2),
                width=round(slot * 0.7, 2),
                height=height,
            )
        )
    ticks = [
        Tick(
            value=axis_max * share,
            label=_number(axis_max * share),
            y=round(PLOT_TOP + PLOT_HEIGHT * (1 - share), 2),
        )
        for share in (0, 0.5, 1)
        if not (counts and (axis_max * share) % 1)
    ]
    return Chart(name=name, title=title, bars=bars, ticks=ticks, axis_max=axis_max)


def chosen_month(value: str | None, today: date) -> tuple[date, str | None]:
    """The month a ``?month=YYYY-MM`` names (this one by default), and any error."""
    if not value:
        return today.replace(day=1), None
    match = MONTH.match(value)
    if match and 1 <= int(match[2]) <= 12 and int(match[1]) >= 1:
        return date(int(match[1]), int(match[2]), 1), None
    return today.replace(day=1), f"“{value}” is not a month: choose one as YYYY-MM."


def month_value(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def _shift(month: date, months: int) -> date | None:
    index = month.year * 12 + month.month - 1 + months
    year, zero_based = divmod(index, 12)
    return date(year, zero_based + 1, 1) if 1 <= year <= 9999 else None


@require_GET
@dashboard_view()
def usage(request: HttpRequest, ws: Workspace) -> HttpResponse:
    today = timezone.now().date()
    month, error = chosen_month(request.GET.get("month"), today)
    first, last = month_range(month.year, month.month)
    figures = usage_by_day(ws.environment, start=first, end=last)
    following = _shift(month, 1)
    return page(
        request,
        ws,
        "dashboard/usage.html",
        {
            "usage": figures,
            "month": month,
            "month_value": month_value(month),
            "previous_month": _shift(month, -1),
            "next_month": following if following and following <= today else None,
            "is_current_month": month == today.replace(day=1),
            "error": error,
            "charts": [
                bar_chart(
                    "calls",
                    "Calls per day",
                    "calls",
                    figures.days,
                    [day.calls for day in figures.days],
                    counts=True,
                ),
                bar_chart(
                    "minutes",
                    "Minutes per day",
                    "min",
                    figures.days,
                    [day.minutes for day in figures.days],
                ),
            ],
            "directions": [
                (label, figures.totals.by_direction[value])
                for value, label in Direction.choices
            ],
            "end_reasons": [
                (value, label, figures.totals.by_end_reason[value])
                for value, label in EndReason.choices
            ],
        },
        section="usage",
        status=400 if error else 200,
    )
