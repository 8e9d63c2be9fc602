from django.urls import path

from assets.api import views

C = "sessions/<str:sessionId>/calls/<str:callId>"

urlpatterns = [
    path("call-audio-assets", views.AssetListView.as_view()),
    path("call-audio-assets/<str:assetId>", views.AssetDetailView.as_view()),
    path(f"{C}/audio/play", views.PlayView.as_view()),
    path(f"{C}/audio/stop", views.StopView.as_view()),
]
