from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from accounts import services
from accounts.models import Account, ApiKey, Environment, Invitation, Membership


class EnvironmentInline(admin.TabularInline):
    model = Environment
    fields = ["kind", "public_id", "recording_retention_days", "record_calls"]
    readonly_fields = ["kind", "public_id"]
    extra = 0
    can_delete = False
    max_num = 2


class MembershipInline(admin.TabularInline):
    model = Membership
    autocomplete_fields = ["user"]
    extra = 0


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "public_id"]
    readonly_fields = ["public_id", "created_at"]
    inlines = [EnvironmentInline, MembershipInline]

    def save_model(
        self, request: HttpRequest, obj: Account, form: object, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = services.account_create(name=obj.name)
        obj.pk, obj.public_id, obj.created_at = (
            created.pk,
            created.public_id,
            created.created_at,
        )


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["account", "kind", "recording_retention_days", "record_calls"]
    list_filter = ["kind"]
    search_fields = ["account__name", "public_id"]
    readonly_fields = ["account", "kind", "public_id", "created_at", "updated_at"]
    exclude = ["signing_secret"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "masked",
        "environment",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["environment__kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "display_prefix", "last4", "environment__account__name"]
    fields = [
        "environment",
        "name",
        "masked",
        "public_id",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = [
        "masked",
        "public_id",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke"]

    @admin.display(description="Key")
    def masked(self, obj: ApiKey) -> str:
        if not obj.pk:
            return "(issued when saved; shown once)"
        return format_html("<code>{}…{}</code>", obj.display_prefix, obj.last4)

    def get_readonly_fields(
        self, request: HttpRequest, obj: ApiKey | None = None
    ) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "environment", "name"] if obj else fields

    def save_model(
        self, request: HttpRequest, obj: ApiKey, form: object, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        issued = services.api_key_issue(environment=obj.environment, name=obj.name)
        obj.pk, obj.public_id = issued.api_key.pk, issued.api_key.public_id
        self.message_user(
            request,
            format_html(
                "New API key (copy it now, it is not shown again): <code>{}</code>",
                issued.secret,
            ),
            messages.WARNING,
        )

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """A record: invitations are made, revoked and accepted in the dashboard."""

    list_display = [
        "email",
        "account",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]
    list_filter = [
        "role",
        ("accepted_at", admin.EmptyFieldListFilter),
        ("revoked_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["email", "account__name"]
    list_select_related = ["account", "invited_by"]
    # The token's hash is of no use to staff and stays out of the page.
    exclude = ["token_hash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: Invitation | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: Invitation | None = None
    ) -> bool:
        return False
