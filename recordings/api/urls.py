from django.urls import path

from recordings.api import views

urlpatterns = [
    path("recordings", views.RecordingListView.as_view()),
    path("recordings/<str:recordingId>", views.RecordingDetailView.as_view()),
    path("recordings/<str:recordingId>/audio", views.RecordingAudioView.as_view()),
]
