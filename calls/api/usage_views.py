"""Usage: calls and minutes per day of the key's environment (GET /usage)."""

from __future__ import annotations

from datetime import date

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from calls import usage
from calls.api.usage_serializers import (
    UsageQuerySerializer,
    UsageSerializer,
    from_after_to,
    range_too_long,
    usage_data,
)
from config.api.schema import envelope, invalid, problems
from config.api.views import EnvironmentAPIView, ok, query_names
from config.errors import InvalidRequest

USAGE_PARAMETERS = [
    OpenApiParameter(
        "from",
        OpenApiTypes.DATE,
        description="The first UTC day, `YYYY-MM-DD` (default: the first day of "
        "`to`'s month).",
    ),
    OpenApiParameter(
        "to",
        OpenApiTypes.DATE,
        description="The last UTC day, included (default: today, UTC). At most "
        f"{usage.MAX_DAYS} days from `from`.",
    ),
    OpenApiParameter(
        "granularity",
        str,
        enum=list(usage.GRANULARITIES),
        default="day",
        description="One figure per UTC day.",
    ),
]


@extend_schema(tags=["Usage"])
class UsageView(EnvironmentAPIView):
    query_parameters = query_names(USAGE_PARAMETERS)

    @extend_schema(
        operation_id="getUsage",
        parameters=USAGE_PARAMETERS,
        responses={
            200: envelope(UsageSerializer),
            **problems(
                invalid(
                    "from",
                    "Date has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DD.",
                ),
                invalid("granularity", '"week" is not a valid choice.'),
                from_after_to(date(2025, 7, 1), date(2025, 6, 30)),
                range_too_long(date(2025, 1, 1)),
                InvalidRequest(
                    "Unknown query parameter 'sessionId'; this list takes from, "
                    "granularity, to.",
                    code="unknown_parameter",
                    param="sessionId",
                ),
            ),
        },
        summary="Calls and minutes per day",
    )
    def get(self, request: Request) -> Response:
        """Calls and minutes of the key's environment for each UTC day of a range
        (the current month up to today by default), by direction and end reason, with
        the range's totals.

        A call counts on the UTC day it was created. Its minutes run from answered to
        ended: a call never answered has none, and a call still going counts the
        minutes it has had so far. `byEndReason` counts calls that have ended; every
        figure is 0 on a day without calls.
        """
        query = UsageQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        return ok(
            usage_data(usage.usage_by_day(self.environment, **query.validated_data))
        )
