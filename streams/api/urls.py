from django.urls import path

from streams.api import views

C = "sessions/<str:session_id>/calls/<str:call_id>"

urlpatterns = [
    path(f"{C}/streams", views.StreamListView.as_view()),
    path(f"{C}/streams/<str:stream_id>", views.StreamDetailView.as_view()),
]
