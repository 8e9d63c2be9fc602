"""Reads the dashboard's pages need, composed from the apps' own scoped selectors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Account, Environment
from accounts.selectors import memberships_of
from calls import selectors as call_selectors
from calls.models import Call, CallState, ConnectionState, Session
from events import selectors as event_selectors
from events.models import Event

LIVE_CALLS_SHOWN = 10
RECENT_EVENTS_SHOWN = 20


@dataclass(frozen=True)
class AccountChoice:
    account: Account
    role: str
    environments: list[Environment]


def switcher_choices(user: Any) -> list[AccountChoice]:
    """The accounts a user belongs to, each with its environments (test first)."""
    memberships = list(memberships_of(user).filter(account__is_active=True))
    environments: dict[int, list[Environment]] = {}
    for environment in Environment.objects.filter(
        account__in=[membership.account for membership in memberships]
    ).order_by("-kind"):
        environments.setdefault(environment.account_id, []).append(environment)
    return [
        AccountChoice(
            membership.account,
            membership.get_role_display(),
            environments.get(membership.account.pk, []),
        )
        for membership in memberships
    ]


def live_calls(environment: Environment) -> QuerySet[Call]:
    return call_selectors.call_list(environment).exclude(state=CallState.ENDED)


def start_of_today() -> datetime:
    return datetime.combine(timezone.now().date(), time.min, tzinfo=UTC)


@dataclass(frozen=True)
class Overview:
    live_calls: list[Call]
    live_count: int
    calls_today: int
    sessions_ready: int
    sessions_total: int


def overview(environment: Environment) -> Overview:
    """Live calls now, calls since midnight (UTC) and the state of the lines."""
    live = live_calls(environment)
    sessions = call_selectors.session_list(environment)
    return Overview(
        live_calls=list(live[:LIVE_CALLS_SHOWN]),
        live_count=live.count(),
        calls_today=call_selectors.call_list(
            environment, filters={"created_after": start_of_today()}
        ).count(),
        sessions_ready=ready_sessions(environment).count(),
        sessions_total=sessions.count(),
    )


def ready_sessions(environment: Environment) -> QuerySet[Session]:
    """Sessions that can place calls now: paired and connected."""
    return call_selectors.session_list(environment).filter(
        paired=True, connection_state=ConnectionState.CONNECTED
    )


def recent_events(
    environment: Environment, limit: int = RECENT_EVENTS_SHOWN
) -> list[Event]:
    return list(event_selectors.event_list(environment).order_by("-id")[:limit])


def latest_event_id(environment: Environment) -> str | None:
    """The newest event's id: a page's event stream resumes after it, missing nothing."""
    public_id = (
        event_selectors.event_list(environment)
        .order_by("-id")
        .values_list("public_id", flat=True)
        .first()
    )
    return None if public_id is None else str(public_id)
