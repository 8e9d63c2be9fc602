from django.urls import path

from events.api import views

W = "webhooks/<str:webhook_id>"
D = f"{W}/deliveries/<str:delivery_id>"

urlpatterns = [
    path("webhooks", views.WebhookListView.as_view()),
    path(W, views.WebhookDetailView.as_view()),
    path(f"{W}/rotate-secret", views.WebhookRotateSecretView.as_view()),
    path(f"{W}/deliveries", views.DeliveryListView.as_view()),
    path(D, views.DeliveryDetailView.as_view()),
    path(f"{D}/retry", views.DeliveryRetryView.as_view()),
    path("events", views.negotiated(views.EventListView)),
    path(
        "sessions/<str:session_id>/events",
        views.negotiated(views.SessionEventListView),
    ),
]
