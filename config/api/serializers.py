"""Serializer building blocks: ISO-8601 UTC timestamps with milliseconds and ``Z``."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers

from config.times import iso_ms

__all__ = ["ApiModelSerializer", "TimestampField", "iso_ms"]


class TimestampField(serializers.DateTimeField):
    def to_representation(self, value: Any) -> str:
        return iso_ms(value) or ""


class ApiModelSerializer(serializers.ModelSerializer):
    # A model as the API renders it: its fields are read-only, so the schema says that
    # every one is always in the body (requests have serializers of their own). Not a
    # docstring: the schema would show it as every subclass's description.

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: TimestampField,
    }

    def get_extra_kwargs(self) -> dict[str, Any]:
        extra: dict[str, Any] = super().get_extra_kwargs()
        for name in getattr(self.Meta, "fields", ()):
            extra[name] = {**extra.get(name, {}), "read_only": True}
        return extra
