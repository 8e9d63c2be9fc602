from django.urls import path

from streams.api import views

C = "sessions/<str:sessionId>/calls/<str:callId>"

urlpatterns = [
    path(f"{C}/streams", views.StreamListView.as_view()),
    path(f"{C}/streams/<str:streamId>", views.StreamDetailView.as_view()),
]
