from django.urls import path

from events.api import event_views, views

W = "webhooks/<str:webhookId>"
D = f"{W}/deliveries/<str:deliveryId>"

urlpatterns = [
    path("webhooks", views.WebhookListView.as_view()),
    path(W, views.WebhookDetailView.as_view()),
    path(f"{W}/rotate-secret", views.WebhookRotateSecretView.as_view()),
    path(f"{W}/deliveries", views.DeliveryListView.as_view()),
    path(D, views.DeliveryDetailView.as_view()),
    path(f"{D}/retry", views.DeliveryRetryView.as_view()),
    path("events", event_views.negotiated(event_views.EventListView)),
    path(
        "sessions/<str:sessionId>/events",
        event_views.negotiated(event_views.SessionEventListView),
    ),
]
