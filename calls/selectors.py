"""Reads of sessions and calls, always scoped to one environment."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import Environment
from calls.models import Call, Session
from config.tenancy import scoped_get


def session_list(environment: Environment) -> QuerySet[Session]:
    return Session.objects.filter(environment=environment, deleted_at__isnull=True)


def session_get(environment: Environment, session_id: object) -> Session:
    return scoped_get(
        Session.objects.filter(deleted_at__isnull=True),
        environment,
        session_id,
        what="session",
    )


def call_list(
    environment: Environment,
    *,
    session: Session | None = None,
    filters: dict[str, Any] | None = None,
) -> QuerySet[Call]:
    calls = Call.objects.select_related("session").filter(environment=environment)
    if session is not None:
        calls = calls.filter(session=session)
    filters = filters or {}
    if filters.get("state"):
        calls = calls.filter(state=filters["state"])
    if filters.get("direction"):
        calls = calls.filter(direction=filters["direction"])
    if filters.get("created_after"):
        calls = calls.filter(created_at__gt=filters["created_after"])
    if filters.get("created_before"):
        calls = calls.filter(created_at__lt=filters["created_before"])
    return calls


def call_get(environment: Environment, session: Session, call_id: object) -> Call:
    return scoped_get(
        Call.objects.select_related("session", "environment").filter(session=session),
        environment,
        call_id,
        what="call",
    )
