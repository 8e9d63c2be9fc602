from django.urls import path

from calls.api import views

S = "sessions/<str:session_id>"
C = f"{S}/calls/<str:call_id>"

urlpatterns = [
    path("sessions", views.SessionListView.as_view()),
    path(S, views.SessionDetailView.as_view()),
    path(f"{S}/connect", views.SessionConnectView.as_view()),
    path(f"{S}/disconnect", views.SessionDisconnectView.as_view()),
    path(f"{S}/logout", views.SessionLogoutView.as_view()),
    path(f"{S}/auth/qr", views.SessionQrView.as_view()),
    path(f"{S}/auth/pairing-code", views.SessionPairingCodeView.as_view()),
    path(f"{S}/calls", views.SessionCallsView.as_view()),
    path("calls", views.CallListView.as_view()),
    path(C, views.CallDetailView.as_view()),
    path(f"{C}/accept", views.CallAcceptView.as_view()),
    path(f"{C}/reject", views.CallRejectView.as_view()),
    path(f"{C}/end", views.CallEndView.as_view()),
    path(f"{C}/mute", views.CallMuteView.as_view()),
    path(f"{C}/dtmf", views.CallDtmfView.as_view()),
    path(f"test-helpers/{S}/scan", views.ScanView.as_view()),
    path(f"test-helpers/{S}/incoming-calls", views.IncomingCallView.as_view()),
    path(f"test-helpers/{S}/drop", views.DropView.as_view()),
]
