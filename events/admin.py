from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from config.errors import ApplicationError
from events import services
from events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint

SESSION_CHOICES = 30
ATTEMPT_FIELDS: tuple[str, ...] = (
    "number",
    "manual",
    "started_at",
    "finished_at",
    "succeeded",
    "status_code",
    "latency_ms",
    "error",
    "next_retry_at",
)

ENDPOINT_FIELDS: tuple[str, ...] = (
    "public_id",
    "environment",
    "url",
    "description",
    "events",
    "enabled",
    "disabled_reason",
    "secret_rotated_at",
    "created_at",
    "updated_at",
    "delivery_log",
)


class SessionFilter(admin.SimpleListFilter):
    """Events of one session: the sessions of the latest events, or any ``?session=`` id."""

    title = "session"
    parameter_name = "session"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, str]]:
        from calls.models import Session

        latest = (
            Event.objects.exclude(session_public_id=None)
            .order_by("-id")
            .values_list("session_public_id", flat=True)[:500]
        )
        recent = [
            session_id for session_id in dict.fromkeys(latest) if session_id is not None
        ][:SESSION_CHOICES]
        names = dict(
            Session.objects.filter(public_id__in=recent).values_list(
                "public_id", "display_name"
            )
        )
        return [("none", "No session")] + [
            (str(session_id), f"{names.get(session_id, '(deleted)')} · {session_id}")
            for session_id in recent
        ]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Event]
    ) -> QuerySet[Event]:
        value = self.value()
        if value == "none":
            return queryset.filter(session_public_id=None)
        if value:
            from config.tenancy import parse_public_id

            parsed = parse_public_id(value)
            return (
                queryset.filter(session_public_id=parsed) if parsed else queryset.none()
            )
        return queryset


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "type",
        "environment",
        "session_link",
        "created_at",
    ]
    list_filter = [
        "type",
        SessionFilter,
        "environment__kind",
        "environment__account",
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["public_id", "session_public_id"]
    list_select_related = ["environment__account"]
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

    @admin.display(description="Session", ordering="session_public_id")
    def session_link(self, event: Event) -> str:
        if event.session_public_id is None:
            return "—"
        return format_html(
            '<a href="?session={}" title="Only this session\'s events">{}</a>',
            event.session_public_id,
            event.session_public_id,
        )


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class EndpointFilter(admin.SimpleListFilter):
    """One endpoint's deliveries (``?webhook=<id>``, linked from the endpoint's page)."""

    title = "webhook endpoint"
    parameter_name = "webhook"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, str]]:
        from config.tenancy import parse_public_id

        parsed = parse_public_id(self.value())
        if parsed is None:
            return []
        endpoint = WebhookEndpoint.objects.filter(public_id=parsed).first()
        return [(str(endpoint.public_id), endpoint.url)] if endpoint else []

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]
    ) -> QuerySet[WebhookDelivery]:
        from config.tenancy import parse_public_id

        if self.value() is None:
            return queryset
        parsed = parse_public_id(self.value())
        if parsed is None:
            return queryset.none()
        return queryset.filter(endpoint__public_id=parsed)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = [
        "url",
        "public_id",
        "environment",
        "enabled",
        "disabled_reason",
        "event_types",
        "created_at",
    ]
    list_filter = ["enabled", "disabled_reason", "environment__kind"]
    search_fields = ["public_id", "url", "description"]
    list_select_related = ["environment__account"]
    # The secrets are never shown, not even to staff.
    fields = ENDPOINT_FIELDS
    readonly_fields = ENDPOINT_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Deliveries")
    def delivery_log(self, endpoint: WebhookEndpoint) -> str:
        url = reverse("admin:events_webhookdelivery_changelist")
        return format_html(
            '<a href="{}?webhook={}">{} deliveries</a>',
            url,
            endpoint.public_id,
            endpoint.deliveries.count(),
        )

    @admin.display(description="Events")
    def event_types(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "endpoint",
        "event_type",
        "status",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = [
        "status",
        EndpointFilter,
        "environment__kind",
        "environment__account",
    ]
    search_fields = ["public_id", "event__public_id", "endpoint__url"]
    list_select_related = ["endpoint", "event"]
    readonly_fields = [
        "public_id",
        "environment",
        "endpoint",
        "event",
        "envelope",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "completed_at",
    ]
    exclude = ["updated_at"]
    inlines = [AttemptInline]
    actions = ["retry_deliveries"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Event type", ordering="event__type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    @admin.display(description="Body")
    def envelope(self, delivery: WebhookDelivery) -> str:
        return format_html(
            "<pre>{}</pre>",
            json.dumps(services.envelope_of(delivery.event), indent=2),
        )

    @admin.action(description="Retry selected deliveries now")
    def retry_deliveries(
        self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]
    ) -> None:
        retried = 0
        for delivery in queryset:
            try:
                services.delivery_retry(delivery=delivery)
                retried += 1
            except ApplicationError as error:
                self.message_user(
                    request, f"{delivery.public_id}: {error.detail}", messages.ERROR
                )
        self.message_user(
            request, f"Queued {retried} deliver(ies) again.", messages.SUCCESS
        )
