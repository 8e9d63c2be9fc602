from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from recordings import services
from recordings.api.views import recording_audio_response
from recordings.models import Recording


@admin.register(Recording)
class RecordingAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "kind",
        "call_link",
        "account",
        "duration",
        "size",
        "created_at",
        "expires_at",
    ]
    list_filter = [
        "kind",
        "environment__kind",
        "environment__account",
        ("expires_at", admin.DateFieldListFilter),
    ]
    search_fields = ["public_id", "call__public_id"]
    date_hierarchy = "created_at"
    list_select_related = ["call", "environment__account"]
    readonly_fields = [field.name for field in Recording._meta.fields] + ["player"]
    actions = ["purge_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        # Django's bulk delete would leave the files: the purge action replaces it.
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="Call", ordering="call")
    def call_link(self, recording: Recording) -> str:
        url = reverse("admin:calls_call_change", args=[recording.call_id])
        return format_html('<a href="{}">{}</a>', url, recording.call.public_id)

    @admin.display(description="Account", ordering="environment__account__name")
    def account(self, recording: Recording) -> str:
        return f"{recording.environment.account.name} · {recording.environment.kind}"

    @admin.display(description="Duration", ordering="duration_ms")
    def duration(self, recording: Recording) -> str:
        return f"{recording.duration_ms / 1000:.1f} s"

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, recording: Recording) -> str:
        return f"{recording.size_bytes / 1_000_000:.2f} MB"

    @admin.display(description="Listen")
    def player(self, recording: Recording) -> str:
        url = reverse("admin:recordings_recording_audio", args=[recording.pk])
        return format_html(
            '<audio controls preload="none" src="{}"></audio> <a href="{}">download</a>',
            url,
            url,
        )

    def get_urls(self) -> list[URLPattern]:
        audio = path(
            "<int:pk>/audio/",
            self.admin_site.admin_view(self.audio_view),
            name="recordings_recording_audio",
        )
        return [audio, *super().get_urls()]

    def audio_view(self, request: HttpRequest, pk: int) -> HttpResponseBase:
        """Staff only (admin_view): the recording's WAV, or a redirect to its signed URL."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        recording = get_object_or_404(Recording.objects.select_related("call"), pk=pk)
        return recording_audio_response(recording)

    def delete_model(self, request: HttpRequest, obj: Recording) -> None:
        services.recording_delete(recording=obj)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[Recording]
    ) -> None:
        services.recordings_delete(list(queryset))

    @admin.action(
        description="Purge selected recordings (files and rows)",
        permissions=["delete"],
    )
    def purge_selected(
        self, request: HttpRequest, queryset: QuerySet[Recording]
    ) -> None:
        count = services.recordings_delete(list(queryset))
        self.message_user(request, f"Purged {count} recording(s).", messages.SUCCESS)
