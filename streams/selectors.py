"""Reads of streams, always scoped to one environment."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Environment
from calls.models import Call
from config.tenancy import scoped_get
from streams.models import Stream


def stream_list(environment: Environment, call: Call) -> QuerySet[Stream]:
    return Stream.objects.select_related("call", "call__session").filter(
        environment=environment, call=call
    )


def stream_get(environment: Environment, call: Call, stream_id: object) -> Stream:
    return scoped_get(
        Stream.objects.select_related("call", "call__session").filter(call=call),
        environment,
        stream_id,
        what="stream",
    )
