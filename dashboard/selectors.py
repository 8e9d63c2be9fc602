"""Reads the dashboard's pages need, composed from the apps' own scoped selectors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, Generic, TypeVar

from django.db import models
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from accounts.models import Account, Environment
from accounts.selectors import memberships_of
from calls import selectors as call_selectors
from calls.models import Call, CallState, ConnectionState, Session
from config.api.pagination import decode_cursor, encode_cursor
from config.errors import InvalidRequest
from dashboard import search
from events import selectors as event_selectors
from events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from events.services import envelope_of

LIVE_CALLS_SHOWN = 10
RECENT_EVENTS_SHOWN = 20
CALLS_PER_PAGE = 25
DELIVERIES_PER_PAGE = 25

M = TypeVar("M", bound=models.Model)
T = TypeVar("T")


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


# ---------------------------------------------------------------- pages of a list


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, newest first, and the cursor of the page of older rows."""

    items: list[T]
    older: str | None


def cursor_position(cursor: str | None) -> int | None:
    """The row a page's cursor (the API's opaque kind) starts below; None for the first
    page, and for a cursor this site did not make (a hand-edited link)."""
    if not cursor:
        return None
    try:
        return decode_cursor(cursor)
    except InvalidRequest:
        return None


def keyset_page(queryset: QuerySet[M], cursor: str | None, size: int) -> Page[M]:
    """A page of rows below the cursor's, newest (highest id) first: however long the
    list, a page costs one indexed read, and rows that arrive meanwhile shift nothing."""
    rows = queryset.order_by("-pk")
    position = cursor_position(cursor)
    if position is not None:
        rows = rows.filter(pk__lt=position)
    found = list(rows[: size + 1])
    older = encode_cursor(found[size - 1].pk) if len(found) > size else None
    return Page(found[:size], older)


def call_search(
    environment: Environment,
    *,
    filters: dict[str, Any],
    text: str = "",
    cursor: str | None = None,
    size: int = CALLS_PER_PAGE,
) -> Page[Call]:
    """The environment's calls a search finds, through the filters, a page at a time.

    ``filters``: the calls selector's (state, direction, created range) and
    ``end_reason``; ``text``: the search box (``dashboard.search``).
    """
    calls = call_selectors.call_list(environment, filters=filters)
    if filters.get("end_reason"):
        calls = calls.filter(end_reason=filters["end_reason"])
    if text:
        calls = calls.filter(search.call_matches(search.parse(text)))
    return keyset_page(calls, cursor, size)


@dataclass(frozen=True)
class DeliveryRow:
    """A delivery as its log shows it: the body that was sent, its last attempt."""

    delivery: WebhookDelivery
    body: str
    last_attempt: WebhookAttempt | None


def delivery_page(
    environment: Environment,
    endpoint: WebhookEndpoint,
    *,
    status: str | None = None,
    cursor: str | None = None,
    size: int = DELIVERIES_PER_PAGE,
) -> Page[DeliveryRow]:
    """An endpoint's deliveries (of one status, if given), a page at a time."""
    deliveries = (
        event_selectors.delivery_list(environment, endpoint, status=status)
        # Only each delivery's last attempt, not all of its retries.
        .prefetch_related(None)
        .prefetch_related(
            Prefetch(
                "attempts",
                queryset=WebhookAttempt.objects.order_by("-number")[:1],
                to_attr="latest_attempts",
            )
        )
    )
    page = keyset_page(deliveries, cursor, size)
    return Page(
        [
            DeliveryRow(
                delivery=delivery,
                # What the receiver got, indented to read (it was sent compact).
                body=json.dumps(envelope_of(delivery.event), indent=2),
                last_attempt=next(iter(getattr(delivery, "latest_attempts", [])), None),
            )
            for delivery in page.items
        ],
        page.older,
    )
