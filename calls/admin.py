from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from calls.models import Call, CallState, EngineHost, Session
from calls.runtime import control
from config.errors import ApplicationError
from events.selectors import call_timeline


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = [
        "display_name",
        "public_id",
        "environment",
        "carrier",
        "connection_state",
        "paired",
        "address",
        "last_error_text",
        "created_at",
    ]
    list_filter = [
        "carrier",
        "connection_state",
        "paired",
        "environment__kind",
        "environment__account",
    ]
    search_fields = ["public_id", "display_name", "address"]
    # Credentials (encrypted) and the carrier's line state (pairing secrets) never show.
    exclude = ["credentials", "line_state"]
    readonly_fields = [
        field.name
        for field in Session._meta.fields
        if field.name not in ("display_name", "credentials", "line_state")
    ] + ["last_error_text"]

    @admin.display(description="last error")
    def last_error_text(self, session: Session) -> str:
        error = session.last_error or {}
        if not error:
            return "—"
        return f"{error.get('code')}: {error.get('message')} ({error.get('at')})"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class LiveFilter(admin.SimpleListFilter):
    title = "live now"
    parameter_name = "live"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, str]]:
        return [("yes", "Live calls now"), ("no", "Ended")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Call]
    ) -> QuerySet[Call]:
        if self.value() == "yes":
            return queryset.exclude(state=CallState.ENDED)
        if self.value() == "no":
            return queryset.filter(state=CallState.ENDED)
        return queryset


@admin.register(Call)
class CallAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "direction",
        "peer_address",
        "state",
        "end_reason",
        "account",
        "environment_kind",
        "created_at",
        "duration",
    ]
    list_filter = [
        LiveFilter,
        "state",
        "direction",
        "end_reason",
        "environment__kind",
        "environment__account",
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["public_id", "peer_address", "carrier_ref"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Call._meta.fields] + ["timeline"]
    actions = ["end_calls"]
    list_select_related = ["environment__account", "session"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Account", ordering="environment__account__name")
    def account(self, call: Call) -> str:
        return call.environment.account.name

    @admin.display(description="Env", ordering="environment__kind")
    def environment_kind(self, call: Call) -> str:
        return call.environment.kind

    @admin.display(description="Duration")
    def duration(self, call: Call) -> str:
        return f"{call.duration_ms / 1000:.1f} s"

    @admin.display(description="Event timeline")
    def timeline(self, call: Call) -> str:
        events = call_timeline(call.environment, str(call.public_id))
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            (
                (
                    event.created_at.isoformat(timespec="milliseconds"),
                    event.type,
                    json.dumps({k: v for k, v in event.data.items() if k != "call"})[
                        :200
                    ],
                )
                for event in events
            ),
        )
        return format_html(
            "<table><tr><th>at</th><th>type</th><th>data</th></tr>{}</table>", rows
        )

    @admin.action(description="End selected calls")
    def end_calls(self, request: HttpRequest, queryset: QuerySet[Call]) -> None:
        ended = 0
        for call in queryset.exclude(state=CallState.ENDED):
            try:
                control.call_end(call)
                ended += 1
            except ApplicationError as error:
                self.message_user(
                    request, f"{call.public_id}: {error.detail}", messages.ERROR
                )
        self.message_user(request, f"Ended {ended} call(s).", messages.SUCCESS)


@admin.register(EngineHost)
class EngineHostAdmin(admin.ModelAdmin):
    list_display = ["host_id", "hostname", "pid", "started_at", "last_seen"]
    readonly_fields = [
        "host_id",
        "channel_name",
        "hostname",
        "pid",
        "started_at",
        "last_seen",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
