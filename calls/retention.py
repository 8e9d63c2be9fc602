"""Bounded growth for calls: ended calls and deleted sessions go once past retention.

An ended call is kept for its environment's ``call_retention_days`` (90 by default)
after it ended, and after that for as long as anything keeps it: a row pointing at it,
but for those registered to go with it (its dial-out streams), or a registered predicate
(its WAVs still waiting in the recording spool). So a recording keeps its call, even past
its ``expiresAt``, until the recordings purge has deleted its file and row: this purge
never deletes a recording nor leaves a file behind. A call that has not ended is never
touched, however old. A session deleted ``call_retention_days`` ago or more goes once
nothing points at it (its calls have gone).

``events.purge_expired`` runs this after the event log's purge, every
``EVENT_PURGE_INTERVAL_S`` (beat, or the embedded scheduler when no beat runs). Each
statement deletes the rows of at most ``EVENT_PURGE_BATCH`` calls or sessions; the run
logs the counts. Two runs at once only share the work.

This module knows none of the apps that plug into calls: they register from their
AppConfig's ``ready()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.fields.reverse_related import ForeignObjectRel
from django.utils import timezone

from accounts.models import Environment
from calls.models import Call, CallState, Session

logger = logging.getLogger(__name__)

_goes_with_call: list[type[models.Model]] = []
_keeps_call: list[Callable[[str], bool]] = []


def register(
    *,
    goes_with_call: type[models.Model] | None = None,
    keeps_call: Callable[[str], bool] | None = None,
) -> None:
    """Register a model whose rows go with their call, or a predicate (given a call's
    id) that keeps an ended call past its retention."""
    if goes_with_call is not None and goes_with_call not in _goes_with_call:
        _goes_with_call.append(goes_with_call)
    if keeps_call is not None and keeps_call not in _keeps_call:
        _keeps_call.append(keeps_call)


def _relations(model: type[models.Model]) -> list[ForeignObjectRel]:
    """Every relation pointing at ``model``, those without a reverse accessor too."""
    return [
        field
        for field in model._meta.get_fields(include_hidden=True)
        if isinstance(field, ForeignObjectRel)
    ]


def _unreferenced(
    queryset: QuerySet, goes_with: Sequence[type[models.Model]] = ()
) -> QuerySet:
    """Rows of ``queryset`` no row points at, but rows of the ``goes_with`` models."""
    for relation in _relations(queryset.model):
        if relation.related_model in goes_with:
            continue
        pointing = relation.related_model._base_manager.filter(
            **{relation.field.name: OuterRef("pk")}
        )
        queryset = queryset.filter(~Exists(pointing))
    return queryset


def _expired_calls(environment_id: int, cutoff: datetime) -> QuerySet[Call]:
    return _unreferenced(
        Call.objects.filter(
            environment_id=environment_id,
            state=CallState.ENDED,
            ended_at__lt=cutoff,
        ),
        _goes_with_call,
    )


def _expired_sessions(environment_id: int, cutoff: datetime) -> QuerySet[Session]:
    return _unreferenced(
        Session.objects.filter(environment_id=environment_id, deleted_at__lt=cutoff)
    )


def _kind(label: str) -> str:
    return str(apps.get_model(label)._meta.verbose_name_plural)


def _delete_calls(
    environment_id: int, cutoff: datetime, ids: list[int], counts: dict[str, int]
) -> None:
    with transaction.atomic():
        # Locked, then looked at again: rows pointing at a call that were committed
        # meanwhile (a finalisation's recordings) keep it, and a finalisation still to
        # commit waits for this transaction, then finds its call gone.
        list(Call.objects.select_for_update().filter(pk__in=ids).values("pk"))
        ids = list(
            _expired_calls(environment_id, cutoff)
            .filter(pk__in=ids)
            .values_list("pk", flat=True)
        )
        if not ids:
            return
        for relation in _relations(Call):
            if relation.related_model in _goes_with_call:
                _, deleted = relation.related_model._base_manager.filter(
                    **{f"{relation.field.name}__in": ids}
                ).delete()
                for label, count in deleted.items():
                    counts[_kind(label)] = counts.get(_kind(label), 0) + count
        counts["calls"] += Call.objects.filter(pk__in=ids)._raw_delete(Call.objects.db)


def _purge_calls(
    environment_id: int, cutoff: datetime, batch: int, counts: dict[str, int]
) -> None:
    after = 0  # ids only grow: a call something else keeps is looked at once a run
    while True:
        candidates = list(
            _expired_calls(environment_id, cutoff)
            .filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", "public_id")[:batch]
        )
        if not candidates:
            return
        after = candidates[-1][0]
        ids = [
            pk
            for pk, public_id in candidates
            if not any(keeps(str(public_id)) for keeps in _keeps_call)
        ]
        if ids:
            _delete_calls(environment_id, cutoff, ids, counts)
        if len(candidates) < batch:
            return


def _purge_sessions(environment_id: int, cutoff: datetime, batch: int) -> int:
    sessions = 0
    while True:
        ids = list(
            _expired_sessions(environment_id, cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return sessions
        with transaction.atomic():
            list(Session.objects.select_for_update().filter(pk__in=ids).values("pk"))
            sessions += (
                _expired_sessions(environment_id, cutoff)
                .filter(pk__in=ids)
                ._raw_delete(Session.objects.db)
            )
        if len(ids) < batch:
            return sessions


def purge_expired(*, batch: int | None = None) -> dict[str, int]:
    """Delete ended calls and deleted sessions past retention; return the counts."""
    batch = batch or settings.EVENT_PURGE_BATCH
    now = timezone.now()
    counts = {"calls": 0}
    counts.update(
        (str(model._meta.verbose_name_plural), 0) for model in _goes_with_call
    )
    counts["sessions"] = 0
    for environment_id, days in Environment.objects.values_list(
        "id", "call_retention_days"
    ):
        cutoff = now - timedelta(days=days)
        _purge_calls(environment_id, cutoff, batch, counts)
        counts["sessions"] += _purge_sessions(environment_id, cutoff, batch)
    if any(counts.values()):
        logger.info(
            "Purged past retention: %s",
            ", ".join(f"{count} {kind}" for kind, count in counts.items()),
        )
    return counts
