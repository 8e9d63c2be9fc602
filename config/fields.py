"""Model helpers shared by every app."""

from __future__ import annotations

import uuid

from django.db import models

from config.ids import uuid7


class PublicIdModel(models.Model):
    """Integer primary key for joins, a UUIDv7 ``public_id`` for URLs and payloads."""

    public_id = models.UUIDField(default=uuid7, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    @property
    def public_id_str(self) -> str:
        value = self.public_id
        return str(value) if isinstance(value, uuid.UUID) else value
