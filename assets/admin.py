from __future__ import annotations

from django.contrib import admin, messages
from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from assets import services
from assets.models import AssetStatus, AudioAsset


@admin.register(AudioAsset)
class AudioAssetAdmin(admin.ModelAdmin):
    list_display = [
        "filename",
        "environment",
        "status",
        "duration",
        "size",
        "created_at",
        "player",
    ]
    list_filter = ["status", "environment__kind", "content_type"]
    search_fields = ["filename", "public_id", "environment__account__name"]
    list_select_related = ["environment__account"]
    DETAIL = (
        "public_id",
        "environment",
        "filename",
        "content_type",
        "status",
        "error_code",
        "error",
        "duration",
        "size",
        "sample_rate",
        "channels",
        "original_name",
        "audio_name",
        "created_at",
        "updated_at",
        "player",
    )
    fields = DETAIL
    readonly_fields = DETAIL
    actions = ["delete_with_files"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: AudioAsset | None = None
    ) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        # The stock bulk delete would leave the files behind.
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="Duration", ordering="duration_ms")
    def duration(self, obj: AudioAsset) -> str:
        if obj.duration_ms is None:
            return "—"
        seconds = obj.duration_ms / 1000
        return f"{int(seconds // 60)}:{seconds % 60:06.3f}"

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, obj: AudioAsset) -> str:
        return f"{obj.size_bytes / 2**20:.2f} MiB"

    @admin.display(description="Normalised audio (16 kHz mono)")
    def player(self, obj: AudioAsset) -> str:
        if obj.status != AssetStatus.READY or not obj.pk:
            return "—"
        url = reverse("admin:assets_audioasset_audio", args=[obj.pk])
        return format_html(
            '<audio controls preload="none" src="{}" style="height:2em"></audio>', url
        )

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:pk>/audio/",
                self.admin_site.admin_view(self.audio_view),
                name="assets_audioasset_audio",
            ),
            *super().get_urls(),
        ]

    def audio_view(self, request: HttpRequest, pk: int) -> HttpResponseBase:
        """Serve the normalised WAV to staff (a short-lived signed URL on S3)."""
        if not self.has_view_permission(request):
            raise Http404
        asset = AudioAsset.objects.filter(pk=pk, status=AssetStatus.READY).first()
        if asset is None:
            raise Http404
        try:
            local = default_storage.path(asset.audio_name)
        except NotImplementedError:
            return redirect(default_storage.url(asset.audio_name))
        return FileResponse(open(local, "rb"), content_type="audio/wav")

    def delete_model(self, request: HttpRequest, obj: AudioAsset) -> None:
        services.asset_delete(asset=obj)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[AudioAsset]
    ) -> None:
        for asset in queryset.select_related("environment"):
            services.asset_delete(asset=asset)

    @admin.action(description="Delete selected assets and their files")
    def delete_with_files(
        self, request: HttpRequest, queryset: QuerySet[AudioAsset]
    ) -> None:
        count = 0
        for asset in queryset.select_related("environment"):
            services.asset_delete(asset=asset)
            count += 1
        self.message_user(request, f"Deleted {count} asset(s).", messages.SUCCESS)
