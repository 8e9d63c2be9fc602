"""Usage: an environment's calls and minutes per UTC day, counted by the database.

What counts: a call counts on the UTC day it was created, whatever its state. Its
minutes run from ``answered_at`` to ``ended_at`` (a call never answered has none); a
call still going counts its minutes so far, up to the moment of the query, as its
snapshot's ``durationMs`` does. Minutes are summed in milliseconds and rounded to 2
decimals only when shown: a total is the rounding of the exact sum, not the sum of
rounded days. ``by_end_reason`` counts ended calls; a call not yet ended has none.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import (
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import Environment
from calls.models import Call, Direction, EndReason
from config.tenancy import scoped

# The longest range one request may ask for: a leap year of days.
MAX_DAYS = 366
GRANULARITIES = ("day",)


def minutes_of(duration_ms: int) -> float:
    """Milliseconds as minutes, rounded to 2 decimals."""
    return round(duration_ms / 60_000, 2)


@dataclass
class DirectionUsage:
    calls: int = 0
    duration_ms: int = 0

    @property
    def minutes(self) -> float:
        return minutes_of(self.duration_ms)


def _by_direction() -> dict[str, DirectionUsage]:
    return {direction: DirectionUsage() for direction in Direction.values}


def _by_end_reason() -> dict[str, int]:
    return dict.fromkeys(EndReason.values, 0)


@dataclass
class UsageTally:
    """Calls, answered calls and minutes, split by direction and by end reason."""

    calls: int = 0
    answered_calls: int = 0
    duration_ms: int = 0
    by_direction: dict[str, DirectionUsage] = field(default_factory=_by_direction)
    by_end_reason: dict[str, int] = field(default_factory=_by_end_reason)

    @property
    def minutes(self) -> float:
        return minutes_of(self.duration_ms)

    @property
    def in_progress_calls(self) -> int:
        """Calls counted here that have not ended (they have no end reason yet)."""
        return self.calls - sum(self.by_end_reason.values())

    def add(
        self,
        *,
        direction: str,
        end_reason: str,
        calls: int,
        answered_calls: int,
        duration_ms: int,
    ) -> None:
        self.calls += calls
        self.answered_calls += answered_calls
        self.duration_ms += duration_ms
        split = self.by_direction.setdefault(direction, DirectionUsage())
        split.calls += calls
        split.duration_ms += duration_ms
        if end_reason:
            self.by_end_reason[end_reason] = (
                self.by_end_reason.get(end_reason, 0) + calls
            )


@dataclass
class DayUsage(UsageTally):
    day: date = date.min


@dataclass
class Usage:
    """An environment's usage over ``start``..``end`` (both included), day by day."""

    start: date
    end: date
    granularity: str
    totals: UsageTally
    days: list[DayUsage]


def usage_range_default(today: date | None = None) -> tuple[date, date]:
    """The current month (UTC) up to today."""
    today = today or timezone.now().date()
    return today.replace(day=1), today


def month_range(year: int, month: int) -> tuple[date, date]:
    """The first and the last day of a month."""
    return date(year, month, 1), date(year, month, monthrange(year, month)[1])


def usage_by_day(
    environment: Environment,
    *,
    start: date,
    end: date,
    granularity: str = "day",
    now: datetime | None = None,
) -> Usage:
    """Count the environment's calls and minutes for each UTC day from start to end."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"Unknown granularity {granularity!r}")
    if end < start or (end - start).days >= MAX_DAYS:
        raise ValueError(f"{start}..{end} is not a range of 1 to {MAX_DAYS} days")
    now = now or timezone.now()
    answered_for = ExpressionWrapper(
        Coalesce("ended_at", Value(now, output_field=DateTimeField()))
        - F("answered_at"),
        output_field=DurationField(),
    )
    rows = (
        scoped(Call.objects.all(), environment)
        .filter(
            created_at__gte=datetime.combine(start, time.min, tzinfo=UTC),
            # The day's last instant, not the next midnight: 9999-12-31 has none.
            created_at__lte=datetime.combine(end, time.max, tzinfo=UTC),
        )
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        # No model ordering: it would join the GROUP BY and split the groups.
        .order_by()
        .values("day", "direction", "end_reason")
        .annotate(
            calls=Count("id"),
            answered_calls=Count("answered_at"),
            duration=Sum(answered_for),
        )
    )
    days = {
        start + timedelta(days=n): DayUsage(day=start + timedelta(days=n))
        for n in range((end - start).days + 1)
    }
    totals = UsageTally()
    for row in rows:
        duration: timedelta | None = row["duration"]
        figures = {
            "direction": row["direction"],
            "end_reason": row["end_reason"],
            "calls": row["calls"],
            "answered_calls": row["answered_calls"],
            "duration_ms": max(0, duration // timedelta(milliseconds=1))
            if duration is not None
            else 0,
        }
        days[_as_date(row["day"])].add(**figures)
        totals.add(**figures)
    return Usage(
        start=start,
        end=end,
        granularity=granularity,
        totals=totals,
        days=list(days.values()),
    )


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)
