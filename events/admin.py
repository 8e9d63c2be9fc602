from __future__ import annotations

from django.contrib import admin

from events.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "type",
        "environment",
        "session_public_id",
        "created_at",
    ]
    list_filter = ["type", "environment__kind", "environment__account"]
    search_fields = ["public_id", "session_public_id"]
    readonly_fields = [
        "public_id",
        "environment",
        "type",
        "session_public_id",
        "data",
        "created_at",
    ]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
