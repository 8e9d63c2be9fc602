"""Settings for the test suite: the embedded default unless DATABASE_URL/REDIS_URL are set."""

import os
import uuid

from config.settings.base import *  # noqa: F403
from config.settings.base import CACHES, CHANNEL_LAYERS, DATABASES, REDIS_URL, VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
API_RATE_LIMIT_PER_MINUTE = 1000

# Each run writes under its own Redis prefix, so runs never see each other's counters.
REDIS_KEY_PREFIX = os.environ.setdefault(
    "REDIS_KEY_PREFIX", f"sbtest-{uuid.uuid4().hex[:8]}"
)
if REDIS_URL:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"{REDIS_KEY_PREFIX}:asgi"
    CACHES["default"]["KEY_PREFIX"] = REDIS_KEY_PREFIX

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so background threads and subprocesses see the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

MEDIA_ROOT = VAR_DIR / "test-media"
