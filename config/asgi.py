"""ASGI entry point: HTTP through Django, WebSockets through Channels routing."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from config.lifespan import HomeLoopApp  # noqa: E402
from config.server import disable_twisted_form_parsing  # noqa: E402

# Uploads must not cost Daphne many times their size in memory.
disable_twisted_form_parsing()
from config.routing import websocket_urlpatterns  # noqa: E402

application = HomeLoopApp(
    ProtocolTypeRouter(
        {
            # Static files (admin, dashboard, API docs) are served by the project itself
            # unless a proxy in front serves STATIC_ROOT (SERVE_STATIC=false).
            "http": ASGIStaticFilesHandler(django_asgi_app)
            if settings.SERVE_STATIC
            else django_asgi_app,
            "websocket": URLRouter(websocket_urlpatterns),
        }
    )
)
