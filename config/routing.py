"""WebSocket routes of every app."""

from __future__ import annotations

from calls.routing import websocket_urlpatterns as calls_websockets

websocket_urlpatterns = [*calls_websockets]
