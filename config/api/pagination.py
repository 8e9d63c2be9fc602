"""Cursor pagination, newest first: ``?limit=`` (1–100, default 25) and ``?cursor=``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import models
from rest_framework.request import Request

from config.errors import InvalidRequest

M = TypeVar("M", bound=models.Model)

DEFAULT_LIMIT = 25
MAX_LIMIT = 100


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, _, value = (
            base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        )
        if version != "v1":
            raise ValueError(version)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(
            "The cursor is not one this API returned.",
            code="invalid_cursor",
            param="cursor",
        ) from None


def read_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid_limit()
    return limit


def invalid_limit() -> InvalidRequest:
    return InvalidRequest(
        f"limit must be a whole number from 1 to {MAX_LIMIT}.", param="limit"
    )


def paginate(
    request: Request,
    queryset: models.QuerySet[M],
    serialize: Callable[[Sequence[M]], Any],
) -> dict[str, Any]:
    """Return ``{"data": [...], "nextCursor": ...}`` for a queryset, newest first."""
    limit = read_limit(request)
    queryset = queryset.order_by("-pk")
    cursor = request.query_params.get("cursor")
    if cursor:
        queryset = queryset.filter(pk__lt=decode_cursor(cursor))
    page = list(queryset[: limit + 1])
    next_cursor = encode_cursor(page[limit - 1].pk) if len(page) > limit else None
    return {"data": serialize(page[:limit]), "next_cursor": next_cursor}
