"""The tenant chokepoint: every lookup of tenant data goes through ``scoped_get``."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, TypeVar

from django.db import models
from django.db.models.fields.related_descriptors import ForwardManyToOneDescriptor

from config.errors import NotFound

if TYPE_CHECKING:
    from accounts.models import Environment

M = TypeVar("M", bound=models.Model)


def parse_public_id(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def scoped(
    queryset: models.QuerySet[M], environment: Environment
) -> models.QuerySet[M]:
    """Narrow a queryset of tenant data to one environment."""
    return queryset.filter(environment=environment)


def scoped_get(
    queryset: models.QuerySet[M],
    environment: Environment,
    public_id: object,
    *,
    what: str,
) -> M:
    """Return the environment's object with this public id, or raise NotFound.

    Another tenant's or environment's object is indistinguishable from a missing one.
    """
    parsed = parse_public_id(public_id)
    found = (
        None
        if parsed is None
        else scoped(queryset, environment).filter(public_id=parsed).first()
    )
    if found is None:
        raise NotFound(
            f"No {what} with id {public_id!s:.64} exists.",
            code=f"{what.replace(' ', '_')}_not_found",
        )
    # The environment is the caller's own: no join or query to read it again.
    if isinstance(
        getattr(type(found), "environment", None), ForwardManyToOneDescriptor
    ):
        found.environment = environment  # type: ignore[attr-defined]
    return found
