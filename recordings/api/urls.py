from django.urls import path

from recordings.api import views

urlpatterns = [
    path("recordings", views.RecordingListView.as_view()),
    path("recordings/<str:recording_id>", views.RecordingDetailView.as_view()),
    path("recordings/<str:recording_id>/audio", views.RecordingAudioView.as_view()),
]
