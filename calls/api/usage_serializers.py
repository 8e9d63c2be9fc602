"""Usage (GET /usage): the query it takes and the figures it returns."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from rest_framework import serializers

from calls.models import EndReason
from calls.usage import (
    GRANULARITIES,
    MAX_DAYS,
    DayUsage,
    Usage,
    UsageTally,
    usage_range_default,
)
from config.api.schema import example, wire
from config.errors import InvalidRequest

DATE_FORMAT = "%Y-%m-%d"


class UsageQuerySerializer(serializers.Serializer):
    """``?from=&to=&granularity=``: the current month (UTC) up to today by default."""

    from_ = serializers.DateField(required=False, input_formats=[DATE_FORMAT])
    to = serializers.DateField(required=False, input_formats=[DATE_FORMAT])
    granularity = serializers.ChoiceField(
        choices=GRANULARITIES, required=False, default="day"
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end: date = attrs.get("to") or usage_range_default()[1]
        start: date = attrs.get("from") or end.replace(day=1)
        if start > end:
            raise from_after_to(start, end)
        if (end - start).days >= MAX_DAYS:
            raise range_too_long(start)
        return {"start": start, "end": end, "granularity": attrs["granularity"]}


def from_after_to(start: date, end: date) -> InvalidRequest:
    return InvalidRequest(
        f"from ({start}) is after to ({end}).", code="invalid_range", param="from"
    )


def range_too_long(start: date) -> InvalidRequest:
    last = start + timedelta(days=MAX_DAYS - 1)
    return InvalidRequest(
        f"A range is at most {MAX_DAYS} days: from {start}, to may be {last} at the "
        "latest.",
        code="invalid_range",
        param="to",
    )


class DirectionUsageSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    minutes = serializers.FloatField(help_text="Answered time, rounded to 2 decimals.")


class UsageByDirectionSerializer(serializers.Serializer):
    outgoing = DirectionUsageSerializer()
    incoming = DirectionUsageSerializer()


UsageByEndReasonSerializer = type(
    "UsageByEndReasonSerializer",
    (serializers.Serializer,),
    {
        "__module__": __name__,
        "__doc__": "Ended calls by end reason (a call still going has none yet); "
        "every reason is listed, 0 when none ended so.",
        **{
            reason: serializers.IntegerField(help_text=f"Calls that ended `{reason}`.")
            for reason in EndReason.values
        },
    },
)


class UsageTallySerializer(serializers.Serializer):
    calls = serializers.IntegerField(
        help_text="Calls created in the period, whatever their state."
    )
    minutes = serializers.FloatField(
        help_text="Answered to ended (or to now, for a call still going), in "
        "minutes rounded to 2 decimals."
    )
    answered_calls = serializers.IntegerField()
    by_direction = UsageByDirectionSerializer()
    by_end_reason = UsageByEndReasonSerializer()


class UsageDaySerializer(UsageTallySerializer):
    date = serializers.DateField(source="day", help_text="A UTC day.")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        return {"date": fields.pop("date"), **fields}


class UsageSerializer(serializers.Serializer):
    """Calls and minutes per UTC day of the key's environment, with the totals."""

    from_ = serializers.DateField(source="start", help_text="The first day, included.")
    to = serializers.DateField(source="end", help_text="The last day, included.")
    granularity = serializers.ChoiceField(choices=GRANULARITIES)
    totals = UsageTallySerializer()
    days = UsageDaySerializer(
        many=True, help_text="Every day of the range, oldest first (0 when no call)."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        return {"from": fields.pop("from_"), **fields}


def usage_data(usage: Usage) -> dict[str, Any]:
    return UsageSerializer(usage).data


@example("Usage")
def _usage_example() -> Any:
    first = DayUsage(day=date(2025, 6, 1))
    second = DayUsage(day=date(2025, 6, 2))
    totals = UsageTally()
    for day, direction, reason, calls, answered, ms in (
        (first, "outgoing", "completed", 3, 3, 754_800),
        (first, "outgoing", "busy", 1, 0, 0),
        (second, "incoming", "remote_hangup", 2, 2, 301_200),
        (second, "incoming", "missed", 1, 0, 0),
    ):
        for tally in (day, totals):
            tally.add(
                direction=direction,
                end_reason=reason,
                calls=calls,
                answered_calls=answered,
                duration_ms=ms,
            )
    usage = Usage(
        start=first.day,
        end=second.day,
        granularity="day",
        totals=totals,
        days=[first, second],
    )
    return wire(usage_data(usage))
