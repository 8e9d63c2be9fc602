"""ASGI entry point: HTTP through Django, WebSockets through Channels routing."""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

from config.handlers import get_asgi_application

logger = logging.getLogger(__name__)

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from config.lifespan import HomeLoopApp  # noqa: E402
from config.server import disable_twisted_form_parsing  # noqa: E402
from config.shutdown import ShutdownAware  # noqa: E402


def fail_websockets_with_a_close_frame() -> bool:
    """Make Daphne fail a WebSocket with a close frame, not by dropping the TCP
    connection; True if Daphne is adjusted.

    autobahn, under Daphne, drops the connection of a WebSocket it fails unless its
    factory's ``failByDrop`` option is off, and Daphne leaves it on with no way to pass
    it: a message past ``--websocket-max-message-size`` cut the connection without a
    word. With it off, the client gets 1009 and autobahn's reason (1002 or 1007 for a
    protocol error or bad UTF-8), as RFC 6455 §7.1.7 asks and as uvicorn does.
    """
    try:
        from autobahn.websocket.protocol import WebSocketServerFactory
        from daphne.ws_protocol import WebSocketFactory
    except ImportError:
        return False
    if getattr(WebSocketFactory, "_switchboard_close_frames", False):
        return True
    if (
        "failByDrop"
        not in inspect.signature(WebSocketServerFactory.setProtocolOptions).parameters
    ):
        logger.warning(
            "autobahn has no failByDrop option: Daphne drops WebSockets it fails "
            "(an oversized message) instead of closing them 1009"
        )
        return False
    original = WebSocketFactory.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.setProtocolOptions(failByDrop=False)

    WebSocketFactory.__init__ = __init__
    WebSocketFactory._switchboard_close_frames = True
    return True


# Uploads must not cost Daphne many times their size in memory.
disable_twisted_form_parsing()
# An oversized message closes its socket 1009, with a reason.
fail_websockets_with_a_close_frame()
from config.routing import websocket_urlpatterns  # noqa: E402

# SIGTERM ends this process's calls and event streams before the server stops.
application = ShutdownAware(
    HomeLoopApp(
        ProtocolTypeRouter(
            {
                # Static files (admin, dashboard, API docs) are served by the project
                # itself unless a proxy in front serves STATIC_ROOT (SERVE_STATIC=false).
                "http": ASGIStaticFilesHandler(django_asgi_app)
                if settings.SERVE_STATIC
                else django_asgi_app,
                "websocket": URLRouter(websocket_urlpatterns),
            }
        )
    )
)
