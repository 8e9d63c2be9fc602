from django.urls import path

from dashboard.views import (
    assets,
    auth,
    calls,
    console,
    environment,
    keys,
    live,
    overview,
    recordings,
    sessions,
    team,
    usage,
    webhooks,
)

app_name = "dashboard"

S = "sessions/<str:session_id>"
C = "calls/<str:session_id>/<str:call_id>"
W = "webhooks/<str:webhook_id>"

urlpatterns = [
    path("login/", auth.login, name="login"),
    path("logout/", auth.logout, name="logout"),
    path("switch/", auth.switch, name="switch"),
    path("", overview.overview, name="overview"),
    path("overview/stats", overview.overview_stats, name="overview-stats"),
    path("events/stream", live.event_stream, name="events"),
    path("sessions/", sessions.session_list, name="sessions"),
    path("sessions/rows", sessions.session_rows, name="session-rows"),
    path(f"{S}/", sessions.session_detail, name="session"),
    path(f"{S}/panel", sessions.session_panel, name="session-panel"),
    path(f"{S}/connect", sessions.session_connect, name="session-connect"),
    path(f"{S}/settings", sessions.session_settings, name="session-settings"),
    path(
        f"{S}/pairing-code", sessions.session_pairing_code, name="session-pairing-code"
    ),
    path(f"{S}/scan", sessions.session_scan, name="session-scan"),
    path(f"{S}/disconnect", sessions.session_disconnect, name="session-disconnect"),
    path(f"{S}/logout", sessions.session_logout, name="session-logout"),
    path(f"{S}/delete", sessions.session_delete, name="session-delete"),
    path("calls/", calls.call_list, name="calls"),
    path("calls/rows", calls.call_rows, name="call-rows"),
    path(f"{C}/", calls.call_detail, name="call"),
    path(f"{C}/panel", calls.call_panel, name="call-panel"),
    path(f"{C}/levels", calls.call_levels, name="call-levels"),
    path(f"{C}/end", calls.call_end, name="call-end"),
    path(f"{C}/mute", calls.call_mute, name="call-mute"),
    path(f"{C}/play", calls.call_play, name="call-play"),
    path("console/", console.console, name="console"),
    path("console/call", console.console_call, name="console-call"),
    path("console/hang-up", console.console_hang_up, name="console-hang-up"),
    path("assets/", assets.asset_list, name="assets"),
    path("assets/rows", assets.asset_rows, name="asset-rows"),
    path("assets/upload", assets.asset_upload, name="asset-upload"),
    path("assets/<str:asset_id>/audio", assets.asset_audio, name="asset-audio"),
    path("assets/<str:asset_id>/delete", assets.asset_delete, name="asset-delete"),
    path("recordings/", recordings.recording_list, name="recordings"),
    path(
        "recordings/<str:recording_id>/audio",
        recordings.recording_audio,
        name="recording-audio",
    ),
    path("keys/", keys.key_list, name="keys"),
    path("keys/<str:key_id>/revoke", keys.key_revoke, name="key-revoke"),
    path("webhooks/", webhooks.webhook_list, name="webhooks"),
    path(f"{W}/", webhooks.webhook_detail, name="webhook"),
    path(f"{W}/rotate-secret", webhooks.webhook_rotate_secret, name="webhook-rotate"),
    path(f"{W}/delete", webhooks.webhook_delete, name="webhook-delete"),
    path(
        f"{W}/deliveries/<str:delivery_id>/retry",
        webhooks.delivery_retry,
        name="delivery-retry",
    ),
    path("settings/", environment.environment_settings, name="settings"),
    path("usage/", usage.usage, name="usage"),
    path("team/", team.team, name="team"),
    path("team/members/<int:member_id>/role", team.member_role, name="member-role"),
    path(
        "team/members/<int:member_id>/remove", team.member_remove, name="member-remove"
    ),
    path(
        "team/invitations/<str:invitation_id>/revoke",
        team.invitation_revoke,
        name="invitation-revoke",
    ),
    path("invitations/<str:token>/", team.invitation, name="invitation"),
]
