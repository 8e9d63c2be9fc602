from django.urls import path

from calls.transports.websocket.consumer import MediaConsumer

websocket_urlpatterns = [
    path(
        "api/v1/sessions/<str:session_id>/calls/<str:call_id>/media",
        MediaConsumer.as_asgi(),
    ),
]
