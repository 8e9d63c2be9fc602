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
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: TimestampField,
    }
