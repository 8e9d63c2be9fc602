from django.urls import path

from calls.api import call_views, usage_views, views

S = "sessions/<str:sessionId>"
C = f"{S}/calls/<str:callId>"

urlpatterns = [
    path("sessions", views.SessionListView.as_view()),
    path(S, views.SessionDetailView.as_view()),
    path(f"{S}/connect", views.SessionConnectView.as_view()),
    path(f"{S}/disconnect", views.SessionDisconnectView.as_view()),
    path(f"{S}/logout", views.SessionLogoutView.as_view()),
    path(f"{S}/auth/qr", views.SessionQrView.as_view()),
    path(f"{S}/auth/pairing-code", views.SessionPairingCodeView.as_view()),
    path(f"{S}/calls", call_views.SessionCallsView.as_view()),
    path("calls", call_views.CallListView.as_view()),
    path(C, call_views.CallDetailView.as_view()),
    path(f"{C}/accept", call_views.CallAcceptView.as_view()),
    path(f"{C}/reject", call_views.CallRejectView.as_view()),
    path(f"{C}/end", call_views.CallEndView.as_view()),
    path(f"{C}/mute", call_views.CallMuteView.as_view()),
    path(f"{C}/dtmf", call_views.CallDtmfView.as_view()),
    path("usage", usage_views.UsageView.as_view()),
    path(f"test-helpers/{S}/scan", views.ScanView.as_view()),
    path(f"test-helpers/{S}/incoming-calls", views.IncomingCallView.as_view()),
    path(f"test-helpers/{S}/drop", views.DropView.as_view()),
]
