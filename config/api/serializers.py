"""Serializer building blocks: ISO-8601 UTC timestamps with milliseconds and ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import models
from rest_framework import serializers


def iso_ms(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{value.microsecond // 1000:03d}Z"
    )


class TimestampField(serializers.DateTimeField):
    def to_representation(self, value: Any) -> str:
        return iso_ms(value) or ""


class ApiModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: TimestampField,
    }
