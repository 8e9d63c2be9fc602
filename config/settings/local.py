"""The embedded default behind ``make run``: one process, no services needed."""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = env.bool("DEBUG", True)

# Webhooks to a receiver on your own machine (http://localhost:…) work locally.
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", True)
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", True)

# Streams to a bot on your own machine (ws://localhost:…) work locally.
STREAM_ALLOW_PRIVATE = env.bool("STREAM_ALLOW_PRIVATE", True)

# A Graph API stand-in on your own machine (graphApiBase http://localhost:…) works locally.
WHATSAPP_ALLOW_PRIVATE_GRAPH = env.bool("WHATSAPP_ALLOW_PRIVATE_GRAPH", True)

# No mail server needed: emails (an invitation's link included) print to the output.
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
