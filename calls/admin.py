from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from calls.models import Call, CallState, EndReason, EngineHost, Session
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
    # Fits a 1440 px screen beside the admin's navigation and the filters: long values
    # are cut short in the list (in full in their tooltip and on the call's page); the
    # column widths are in admin/calls/call/change_list.html.
    list_display = [
        "call_id",
        "peer",
        "state_and_reason",
        "account",
        "created",
        "duration",
    ]
    list_display_links = ["call_id"]
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
    readonly_fields = [field.name for field in Call._meta.fields] + [
        "timeline",
        "recordings",
        "dial_out_streams",
    ]
    actions = ["end_calls"]
    list_select_related = ["environment__account", "session"]
    list_per_page = 50
    change_form_template = "admin/calls/call/change_form.html"

    # A call is a record: staff read it and may end it, never edit or delete it here.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: Call | None = None
    ) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(
        self, request: HttpRequest, obj: Call | None = None
    ) -> bool:
        return False

    def may_end(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("calls.change_call"))

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:call_pk>/end/",
                self.admin_site.admin_view(self.end_view),
                name="calls_call_end",
            ),
            path(
                "<int:call_pk>/recordings/<int:recording_pk>/audio/",
                self.admin_site.admin_view(self.recording_audio_view),
                name="calls_call_recording_audio",
            ),
        ]
        return own + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        call = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if call is not None and call.state != CallState.ENDED and self.may_end(request):
            context["end_call_url"] = reverse("admin:calls_call_end", args=[call.pk])
        return super().change_view(request, object_id, form_url, context)

    def end_view(self, request: HttpRequest, call_pk: int) -> HttpResponse:
        """POST: end the call as ``ended_by_staff`` and log who did it."""
        if request.method != "POST":
            raise Http404
        if not self.may_end(request):
            raise PermissionDenied
        call = get_object_or_404(Call, pk=call_pk)
        self._end(request, call)
        return HttpResponseRedirect(reverse("admin:calls_call_change", args=[call.pk]))

    def _end(self, request: HttpRequest, call: Call) -> bool:
        try:
            snapshot = control.call_end(call, reason=EndReason.ENDED_BY_STAFF)
        except ApplicationError as error:
            self.message_user(
                request, f"{call.public_id}: {error.detail}", messages.ERROR
            )
            return False
        if snapshot.get("endReason") != EndReason.ENDED_BY_STAFF:
            self.message_user(
                request,
                f"{call.public_id} had already ended ({snapshot.get('endReason')}).",
                messages.WARNING,
            )
            return False
        self.log_change(request, call, "Ended the call (ended_by_staff).")
        self.message_user(request, f"Ended call {call.public_id}.", messages.SUCCESS)
        return True

    def recording_audio_view(
        self, request: HttpRequest, call_pk: int, recording_pk: int
    ) -> HttpResponse:
        from recordings.api.views import recording_audio_response
        from recordings.models import Recording

        if not self.has_view_permission(request):
            raise PermissionDenied
        recording = get_object_or_404(
            Recording.objects.select_related("call"), pk=recording_pk, call_id=call_pk
        )
        return recording_audio_response(recording)  # type: ignore[return-value]

    @admin.display(description="Call", ordering="public_id")
    def call_id(self, call: Call) -> str:
        return format_html('<span class="call-id">{}</span>', call.public_id)

    @admin.display(description="Peer", ordering="peer_address")
    def peer(self, call: Call) -> str:
        return format_html(
            '<span class="cut" title="{}">{}</span><br><span class="quiet">{}</span>',
            call.peer_address,
            call.peer_address,
            call.get_direction_display().lower(),
        )

    @admin.display(description="State", ordering="state")
    def state_and_reason(self, call: Call) -> str:
        if not call.end_reason:
            return call.get_state_display()
        return format_html(
            '{}<br><span class="quiet">{}</span>',
            call.get_state_display(),
            call.end_reason.replace("_", " "),
        )

    @admin.display(description="Account", ordering="environment__account__name")
    def account(self, call: Call) -> str:
        name = call.environment.account.name
        return format_html(
            '<span class="cut" title="{}">{}</span><br><span class="quiet">{}</span>',
            name,
            name,
            call.environment.kind,
        )

    @admin.display(description="Created", ordering="created_at")
    def created(self, call: Call) -> str:
        return format_html(
            '{}<br><span class="quiet">{}</span>',
            f"{call.created_at:%Y-%m-%d}",
            f"{call.created_at:%H:%M:%S}",
        )

    @admin.display(description="Duration")
    def duration(self, call: Call) -> str:
        return f"{call.duration_ms / 1000:.1f} s"

    @admin.display(description="Event timeline")
    def timeline(self, call: Call) -> str:
        events = call_timeline(call.environment, str(call.public_id))
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td>"
            "<td><code>{}</code></td></tr>",
            (
                (
                    event.created_at.isoformat(timespec="milliseconds"),
                    event.type,
                    (event.data.get("call") or {}).get("state", ""),
                    json.dumps({k: v for k, v in event.data.items() if k != "call"})[
                        :200
                    ],
                )
                for event in events
            ),
        )
        return format_html(
            "<table><tr><th>at</th><th>type</th><th>state</th><th>data</th></tr>"
            "{}</table>",
            rows,
        )

    @admin.display(description="Recordings")
    def recordings(self, call: Call) -> str:
        from recordings.models import Recording

        found = list(Recording.objects.filter(call=call).order_by("kind"))
        if not found:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{} s</td><td>"
            '<audio controls preload="metadata" src="{}"></audio></td></tr>',
            (
                (
                    recording.kind,
                    f"{recording.duration_ms / 1000:.1f}",
                    reverse(
                        "admin:calls_call_recording_audio",
                        args=[call.pk, recording.pk],
                    ),
                )
                for recording in found
            ),
        )
        return format_html("<table>{}</table>", rows)

    @admin.display(description="Dial-out streams")
    def dial_out_streams(self, call: Call) -> str:
        from streams.models import Stream

        found = list(Stream.objects.filter(call=call).order_by("created_at"))
        if not found:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td>{} / {} / {}</td>"
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    stream.public_id,
                    stream.url[:80],
                    stream.type,
                    stream.channel,
                    stream.format,
                    stream.state,
                    getattr(stream, "last_error", "") or "",
                )
                for stream in found
            ),
        )
        return format_html(
            "<table><tr><th>id</th><th>url</th><th>type / channel / format</th>"
            "<th>state</th><th>last error</th></tr>{}</table>",
            rows,
        )

    @admin.action(description="End selected calls", permissions=["change"])
    def end_calls(self, request: HttpRequest, queryset: QuerySet[Call]) -> None:
        for call in queryset.exclude(state=CallState.ENDED):
            self._end(request, call)


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
