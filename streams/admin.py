from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join

from streams.models import Stream

FIELDS = (
    "public_id",
    "environment",
    "call",
    "url",
    "type",
    "channel",
    "format",
    "dialect",
    "on_disconnect",
    "header_names",
    "custom_parameters",
    "status_callback",
    "state",
    "reason",
    "frames_sent",
    "frames_received",
    "frames_dropped",
    "protocol_errors",
    "reconnects",
    "last_error",
    "created_at",
    "started_at",
    "stopped_at",
    "updated_at",
)


@admin.register(Stream)
class StreamAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "call",
        "type",
        "channel",
        "dialect",
        "format",
        "state",
        "reason",
        "frames_sent",
        "frames_received",
        "frames_dropped",
        "last_error",
        "created_at",
    ]
    list_filter = [
        "state",
        "type",
        "dialect",
        "format",
        "environment__kind",
        "environment__account",
    ]
    search_fields = ["public_id", "call__public_id", "url"]
    list_select_related = ["call"]
    fields = FIELDS
    readonly_fields = FIELDS

    @admin.display(description="headers")
    def header_names(self, stream: Stream) -> str:
        # Names only: values are often the customer's credentials.
        return format_html_join(", ", "{}", ((name,) for name in stream.headers)) or "—"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
