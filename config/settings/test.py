"""Settings for the test suite: the embedded default unless DATABASE_URL/REDIS_URL are set."""

import os
import uuid

from config.ports import free_sip_port
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

# Test databases are named per run, so runs on one machine never share one.
_run = os.environ.setdefault("SWITCHBOARD_TEST_RUN", uuid.uuid4().hex[:8])
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so background threads and subprocesses see the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{_run}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_switchboard_{_run}"}
    # Engine threads open their own connections: close them after each use so the
    # test database can be dropped at the end of the run.
    DATABASES["default"]["CONN_MAX_AGE"] = 0

MEDIA_ROOT = VAR_DIR / "test-media"
# Recording spools of this run, unless a test gave a server process its own.
if "RECORDING_SPOOL_DIR" not in os.environ:
    RECORDING_SPOOL_DIR = VAR_DIR / "test-spool" / _run

# Test receivers listen on loopback over plain HTTP; the SSRF tests switch these off.
WEBHOOK_ALLOW_HTTP = True
WEBHOOK_ALLOW_PRIVATE = True

# Test receivers of dial-out streams listen on loopback.
STREAM_ALLOW_PRIVATE = True


# The SIP carrier's listener (used only by tests that enable the carrier): a free
# loopback port of this process, and an RTP range of its own.
SIP_BIND = f"127.0.0.1:{free_sip_port()}"
SIP_RTP_PORTS = (12000, 12999)
SIP_MEDIA_TIMEOUT_S = 5

# WhatsApp: the fake Graph API of the tests listens on loopback over http, and WebRTC
# peers meet on loopback with no STUN server.
WHATSAPP_ALLOW_PRIVATE_GRAPH = True
WHATSAPP_ICE_SERVERS = []
WHATSAPP_ICE_ADDRESSES = ["127.0.0.1"]
WHATSAPP_CONNECT_TIMEOUT_S = 5.0

# Every test client comes from 127.0.0.1, and many present wrong keys on purpose: the
# bad-key limit is tested on its own address with a limit of its own.
API_BAD_KEY_LIMIT_PER_MINUTE = 1_000_000
