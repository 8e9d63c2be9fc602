"""Settings shared by every shape of Switchboard; the environment selects the parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from config.env import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env.str("SWITCHBOARD_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env.str(
    "SECRET_KEY", "insecure-local-development-key-do-not-use-in-production"
)
DEBUG = env.bool("DEBUG", False)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "events",
    "calls",
    "assets",
    "recordings",
    "dashboard",
    "streams",
]

MIDDLEWARE = [
    "config.api.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.security.content_security_policy",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
# Threads a server process keeps for the sync part of HTTP requests (middleware and
# views, config/handlers.py): at most this many requests run their Python at once.
API_THREADS = env.int("API_THREADS", 16, min_value=1)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _sqlite(path: Path) -> dict[str, object]:
    """SQLite as every process of the embedded shape shares it: one writer at a time,
    the others waiting (busy timeout) instead of failing."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # Kept open by the threads that serve requests and reach the database (a
        # bounded number, config/handlers.py): opening one costs more than a
        # request's queries.
        "CONN_MAX_AGE": None,
        # WAL lets the media engine's writes and request reads proceed together.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def database_from_url(url: str | None, *, pool_default: int = 0) -> dict[str, object]:
    """Translate DATABASE_URL into Django's DATABASES entry (SQLite under var/ if unset)."""
    if url is None:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        return _sqlite(VAR_DIR / "switchboard.sqlite3")
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return _sqlite(Path(unquote(parts.path)))
    database: dict[str, object] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "switchboard",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": env.int("DATABASE_CONN_MAX_AGE", 60, min_value=0),
        "CONN_HEALTH_CHECKS": True,
        # How the connections show in pg_stat_activity.
        "OPTIONS": {
            "application_name": env.str("DATABASE_APPLICATION_NAME", "switchboard")
        },
    }
    # A bounded pool per process (psycopg's): at most this many connections however
    # many requests and threads run; a request that waits past the timeout for one is
    # a 503 to retry. 0: no pool (a persistent connection per thread).
    pool_size = env.int("DATABASE_POOL_MAX_SIZE", pool_default, min_value=0)
    if pool_size:
        database["CONN_MAX_AGE"] = 0
        database["CONN_HEALTH_CHECKS"] = False
        database["OPTIONS"] = {
            **database["OPTIONS"],  # type: ignore[dict-item]
            "pool": {
                "min_size": min(2, pool_size),
                "max_size": pool_size,
                "timeout": env.float("DATABASE_POOL_TIMEOUT_S", 10.0, min_value=0.1),
            },
        }
    return database


DATABASE_URL = env.url("DATABASE_URL", schemes=("postgres", "postgresql", "sqlite"))
DATABASES = {"default": database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.url("REDIS_URL", schemes=("redis", "rediss"))
# Namespaces every key this deployment writes to Redis (channel layer, limits, registry).
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", "sb")

CHANNEL_LAYERS: dict[str, dict[str, Any]]
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's default 5 s socket timeout races channels-redis's 5 s
                # blocking receive; give reads room past it.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 30,
                        "socket_connect_timeout": 5,
                    }
                ],
                "prefix": f"{REDIS_KEY_PREFIX}:asgi",
                "capacity": 1500,
                "expiry": 30,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: on Redis when REDIS_URL is set; otherwise tasks run in the calling process.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = REDIS_URL is None
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish that finds the broker unreachable fails at once. Without this, kombu retries
# the connection for broker_connection_timeout, sleeping 2 s then 4 s, so every event
# written during a Redis outage held its request ~6 s per webhook delivery. Callers
# retry by their own policy (Celery's default: three retries within a second) or leave
# the work to a sweep (the webhook outbox, stuck assets, recording leftovers). Workers
# reconnect on their own schedule (broker_connection_max_retries), untouched by this.
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 0}

# Email (team invitations), sent once the inviting request's transaction commits.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", "localhost")
EMAIL_PORT = env.int("EMAIL_PORT", 587, min_value=1)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", True)
# Sending happens in the request: a stalled mail server must not hold it long.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", 10, min_value=1)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "Switchboard <noreply@localhost>")

STORAGE_BACKEND = env.choice("STORAGE_BACKEND", "local", ("local", "s3"))
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
SERVE_STATIC = env.bool("SERVE_STATIC", True)

if STORAGE_BACKEND == "s3":
    AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", required=True)
    AWS_S3_REGION_NAME = env.optional_str("AWS_S3_REGION_NAME")
    AWS_S3_ENDPOINT_URL = env.url("AWS_S3_ENDPOINT_URL", schemes=("http", "https"))
    AWS_ACCESS_KEY_ID = env.optional_str("AWS_ACCESS_KEY_ID")
    AWS_SECRET_ACCESS_KEY = env.optional_str("AWS_SECRET_ACCESS_KEY")
    AWS_DEFAULT_ACL = None
    AWS_QUERYSTRING_AUTH = True
    AWS_QUERYSTRING_EXPIRE = env.int("AWS_QUERYSTRING_EXPIRE", 300, min_value=10)
    AWS_S3_FILE_OVERWRITE = False
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage"}
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}

STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["config.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["config.api.auth.HasEnvironment"],
    "DEFAULT_THROTTLE_CLASSES": ["config.api.ratelimit.ApiKeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["config.api.renderers.EnvelopeRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "djangorestframework_camel_case.parser.CamelCaseJSONParser",
        "djangorestframework_camel_case.parser.CamelCaseMultiPartParser",
        "djangorestframework_camel_case.parser.CamelCaseFormParser",
    ],
    "EXCEPTION_HANDLER": "config.api.errors.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "config.api.schema.SwitchboardAutoSchema",
    "UNAUTHENTICATED_USER": None,
    "JSON_UNDERSCOREIZE": {"no_underscore_before_number": True},
}

# djangorestframework-camel-case reads its options from JSON_CAMEL_CASE (not from
# REST_FRAMEWORK). A stream's `headers` and `customParameters` are the customer's own
# names: the parser and renderer keep them verbatim instead of renaming their keys.
JSON_CAMEL_CASE = {
    "JSON_UNDERSCOREIZE": {
        "ignore_fields": ("headers", "custom_parameters", "customParameters")
    }
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Switchboard API",
    "DESCRIPTION": (
        "Live voice calls with real-time audio streaming.\n\n"
        "- Every request carries `Authorization: Bearer <api key>`; a key sees only "
        "its own environment (another's objects are 404).\n"
        "- Bodies are JSON with camelCase names (the audio upload is multipart).\n"
        '- A success is `{"data": …}`; a list is a page, `{"data": [...], '
        '"nextCursor": …}`, newest first, with `?limit=` (1–100, default 25) and '
        "`?cursor=`.\n"
        "- Errors are RFC 9457 problem details (`application/problem+json`) with a "
        "stable `code`, `param` when one field is at fault, and `requestId`; every "
        "response carries `X-Request-Id`.\n"
        "- Creating POSTs honour `Idempotency-Key`.\n"
        "- Beyond JSON: the live media socket (a WebSocket), Server-Sent Events on the "
        "event routes, and a Twilio-compatible hang-up endpoint, each documented as an "
        "operation."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "CAMELIZE_NAMES": False,
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    # The API reads other bodies too, but documents JSON only (the upload says
    # multipart itself): generators given a choice send form data nested bodies lose.
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    "TAGS": [
        {"name": "Environment", "description": "The calling key's environment."},
        {"name": "Sessions", "description": "Linked lines: pair, connect, unlink."},
        {"name": "Calls", "description": "Place, answer, control and list calls."},
        {"name": "Media", "description": "The live media socket of a call."},
        {"name": "Streams", "description": "Dial-out media streams (Wavix/Twilio)."},
        {"name": "Assets", "description": "Uploaded audio to play into calls."},
        {"name": "Playback", "description": "Play assets into a call, or stop."},
        {"name": "Recordings", "description": "WAV recordings of calls."},
        {"name": "Events", "description": "The event log: JSON pages or SSE."},
        {"name": "Webhooks", "description": "Signed event deliveries."},
        {"name": "Usage", "description": "Calls and minutes per day."},
        {
            "name": "Test helpers",
            "description": "The simulated network (test environments only).",
        },
        {
            "name": "Twilio compatibility",
            "description": "Twilio's Call resource, for bots that hang up through it.",
        },
    ],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.contrib.djangorestframework_camel_case.camelize_serializer_fields",
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.schema_hooks.describe_path_parameters",
        "config.api.schema_hooks.add_problem_responses",
        "config.api.schema_hooks.add_links",
        "config.api.schema_hooks.add_examples",
        # Routes outside DRF, documented by their apps.
        "calls.api.media.document_media_socket",
        "streams.api.twilio.document_call_resource",
    ],
    "AUTHENTICATION_WHITELIST": ["config.api.auth.ApiKeyAuthentication"],
    # Enum components named after what they are, not after the field that first had one.
    "ENUM_NAME_OVERRIDES": {
        "EnvironmentKindEnum": "accounts.models.EnvironmentKind",
        "ConnectionStateEnum": "calls.models.ConnectionState",
        "CallStateEnum": "calls.models.CallState",
        "CallDirectionEnum": "calls.models.Direction",
        "IncomingBehaviorEnum": "calls.carriers.simulator.INCOMING_BEHAVIOURS",
        "StreamTypeEnum": "streams.models.StreamType",
        "StreamChannelEnum": "streams.models.StreamChannel",
        "StreamFormatEnum": "streams.models.StreamFormat",
        "StreamDialectEnum": "streams.models.StreamDialect",
        "StreamStateEnum": "streams.models.StreamState",
        "StreamOnDisconnectEnum": "streams.models.OnDisconnect",
        "AssetStatusEnum": "assets.models.AssetStatus",
        "PlaybackModeEnum": ["queue", "interrupt"],
        "PlaybackStateEnum": [
            "queued",
            "playing",
            "completed",
            "stopped",
            "call_ended",
        ],
        "RecordingKindEnum": "recordings.models.RecordingKind",
        "DeliveryStatusEnum": "events.models.DeliveryStatus",
    },
}

# API behaviour
API_RATE_LIMIT_PER_MINUTE = env.int("API_RATE_LIMIT_PER_MINUTE", 600, min_value=1)
# Wrong or revoked API keys one client address may present a minute before its requests
# are refused with 429 unread.
API_BAD_KEY_LIMIT_PER_MINUTE = env.int("API_BAD_KEY_LIMIT_PER_MINUTE", 30, min_value=1)
IDEMPOTENCY_TTL_SECONDS = 24 * 3600

# Carriers (DESIGN §11): every driver by name, as the dotted path of its Carrier class.
# SWITCHBOARD_CARRIERS enables some of them for live environments; the first is the
# default of sessions created without `carrier`. Test environments use the simulator.
CARRIERS: dict[str, str] = {
    "simulator": "calls.carriers.simulator.SimulatorCarrier",
    "sip": "calls.carriers.sip.SipCarrier",
    "whatsapp": "calls.carriers.whatsapp.WhatsAppCarrier",
}
SWITCHBOARD_CARRIERS = env.list("SWITCHBOARD_CARRIERS", ["simulator"])
# Fernet keys for carrier credentials at rest, comma separated: the first encrypts, all
# decrypt (calls/credentials.py). Unset: a key derived from SECRET_KEY.
SWITCHBOARD_CREDENTIALS_KEYS = env.list("SWITCHBOARD_CREDENTIALS_KEY", [])
# Whether this process holds lines' network presence (e.g. a SIP registration): true on
# the processes that host media, false on API-only processes. A line is held by one
# process at a time, under a lease renewed every heartbeat and taken over once it lapses.
SWITCHBOARD_HOSTS_LINES = env.bool("SWITCHBOARD_HOSTS_LINES", True)
LINE_LEASE_S = env.int("LINE_LEASE_S", 30, min_value=3)
# A line the network refused is tried again this often (or at once on connect).
LINE_RETRY_S = env.int("LINE_RETRY_S", 60, min_value=1)
# The SIP trunk carrier (DESIGN §11.1), in the processes that hold lines: its listener,
# the address peers reach it at (Contact and SDP; default: the bound one), RTP ports.
SIP_BIND = env.str("SIP_BIND", "0.0.0.0:5060")
SIP_PUBLIC_ADDRESS = env.str("SIP_PUBLIC_ADDRESS", "")
SIP_RTP_PORTS = env.port_range("SIP_RTP_PORTS", (20000, 29999))
SIP_MEDIA_TIMEOUT_S = env.int("SIP_MEDIA_TIMEOUT_S", 30, min_value=0)
SIP_JITTER_BUFFER_MS = env.str("SIP_JITTER_BUFFER_MS", "20-160")
SIP_REGISTER_INTERVAL_S = env.int("SIP_REGISTER_INTERVAL_S", 300, min_value=30)
SIP_REGISTER_TIMEOUT_S = env.float("SIP_REGISTER_TIMEOUT_S", 35.0, min_value=1.0)
# The stack's per-call send threads may wake up to this much later than their 4 ms
# sleeps ask (timer slack; config/priority.py): fewer wake-ups for up to this much more
# send jitter. Needs root or CAP_SYS_NICE, else it is logged and ignored; 0: unchanged.
SIP_SEND_SLACK_MS = env.int("SIP_SEND_SLACK_MS", 10, min_value=0, max_value=12)
# Where Switchboard is reached from outside (scheme, host, port): the base of the URLs it
# gives to other services, such as a WhatsApp session's webhook URL for Meta.
SWITCHBOARD_PUBLIC_URL = env.str("SWITCHBOARD_PUBLIC_URL", "http://127.0.0.1:8000")
SWITCHBOARD_PROCESS_URL = env.url(
    "SWITCHBOARD_PROCESS_URL", schemes=("ws", "wss", "http", "https")
)
# WhatsApp Business Calling (DESIGN §11.2): the Graph API a session calls by default (a
# session may name another with `graphApiBase`; production accepts only https URLs of
# public hosts there), STUN/TURN servers for WebRTC, the addresses offered as ICE host
# candidates (empty: every interface but loopback), how long ICE and DTLS may take before
# a call fails, how long a Graph API request may take, and how many threads run the
# WebRTC legs (each its own event loop, off the media clock's).
WHATSAPP_GRAPH_API_BASE = env.str(
    "WHATSAPP_GRAPH_API_BASE", "https://graph.facebook.com/v23.0"
)
WHATSAPP_ALLOW_PRIVATE_GRAPH = env.bool("WHATSAPP_ALLOW_PRIVATE_GRAPH", False)
WHATSAPP_ICE_SERVERS = env.list(
    "WHATSAPP_ICE_SERVERS", ["stun:stun.l.google.com:19302"]
)
WHATSAPP_ICE_ADDRESSES = env.list("WHATSAPP_ICE_ADDRESSES", [])
WHATSAPP_CONNECT_TIMEOUT_S = env.float(
    "WHATSAPP_CONNECT_TIMEOUT_S", 20.0, min_value=1.0
)
WHATSAPP_GRAPH_TIMEOUT_S = env.float("WHATSAPP_GRAPH_TIMEOUT_S", 10.0, min_value=0.5)
WHATSAPP_RTC_THREADS = env.int("WHATSAPP_RTC_THREADS", 1, min_value=1)

# Calls and the simulated network. Times are settings so tests (and demos) can shrink them.
CALL_RING_TIMEOUT_S = env.float("CALL_RING_TIMEOUT_S", 30.0, min_value=0.1)
CALL_MAX_DURATION_S = env.float("CALL_MAX_DURATION_S", 4 * 3600.0, min_value=1.0)
CALL_COMMAND_TIMEOUT_S = env.float("CALL_COMMAND_TIMEOUT_S", 5.0, min_value=0.5)
SESSION_QR_TTL_S = env.int("SESSION_QR_TTL_S", 20, min_value=1)
SIM_DIAL_MS = env.int("SIM_DIAL_MS", 300, min_value=0)
SIM_RING_MS = env.int("SIM_RING_MS", 2000, min_value=0)
SIM_HANGUP_AFTER_MS = env.int("SIM_HANGUP_AFTER_MS", 5000, min_value=0)
# The live media socket's playout buffer (DESIGN §5).
# Calls (and sockets bridged to calls hosted elsewhere) one process carries before it
# refuses more (503 media_capacity, close 1013) instead of degrading every call; 0 = no
# limit. bench/media_socket.py measures a core's capacity (README: media processes).
MEDIA_MAX_CALLS = env.int("MEDIA_MAX_CALLS", 300, min_value=0)
# The media loop's thread runs SCHED_RR at this priority, 1-99 (0: the normal
# scheduler), a SIP stack's receive threads one below it (config/priority.py). Needs
# root, CAP_SYS_NICE or an RLIMIT_RTPRIO that allows it; else it is logged and ignored.
MEDIA_REALTIME_PRIORITY = env.int(
    "MEDIA_REALTIME_PRIORITY", 0, min_value=0, max_value=99
)
MEDIA_BUFFER_CAPACITY_MS = env.int("MEDIA_BUFFER_CAPACITY_MS", 10_000, min_value=1000)
MEDIA_BUFFER_PAUSE_MS = env.int("MEDIA_BUFFER_PAUSE_MS", 500, min_value=40)
MEDIA_BUFFER_RESUME_MS = env.int("MEDIA_BUFFER_RESUME_MS", 250, min_value=0)
# A live stream's backlog left standing after a stall is trimmed back to this by
# dropping silence (calls/transports/websocket/link.py); 0 turns trimming off.
MEDIA_PLAYOUT_TARGET_MS = env.int("MEDIA_PLAYOUT_TARGET_MS", 60, min_value=0)
# A media socket's call is ticked in the phase of the 20 ms frame that comes soonest
# after the client's audio arrives (calls/runtime/clock.py): the audio waits 2-7 ms for
# its tick instead of 0-20. Off by default: it halves the median at light load, but past
# about 450 calls per core the p99 was worse (README, "Tick alignment").
MEDIA_ALIGN_TICKS = env.bool("MEDIA_ALIGN_TICKS", False)
# Frames per channel-layer message when a media socket lands in another process than its
# call (the exceptional path): fewer messages, but up to this many frames more latency.
MEDIA_BRIDGE_BATCH_FRAMES = env.int(
    "MEDIA_BRIDGE_BATCH_FRAMES", 5, min_value=1, max_value=50
)
# A process hosting runtimes beats every ENGINE_HEARTBEAT_S; silent for ENGINE_STALE_AFTER_S,
# its calls are ended `failed` by the reaper, which runs every CALL_REAPER_INTERVAL_S.
ENGINE_HEARTBEAT_S = env.int("ENGINE_HEARTBEAT_S", 5, min_value=1)
ENGINE_STALE_AFTER_S = env.int("ENGINE_STALE_AFTER_S", 30, min_value=2)
CALL_REAPER_INTERVAL_S = env.int("CALL_REAPER_INTERVAL_S", 15, min_value=1)

# Audio assets (DESIGN §7). An upload past ASSET_MAX_UPLOAD_BYTES is refused with 413 as
# soon as its Content-Length or its running size shows it (assets/uploads.py). Decoded
# audio longer than ASSET_MAX_DURATION_S fails: it bounds a worker's memory (decoding
# holds 16 kHz float32, 3.8 MB a minute) and a playing call's (16-bit, 1.9 MB a minute).
ASSET_MAX_UPLOAD_BYTES = 32 * 1024 * 1024
ASSET_MAX_DURATION_S = env.int(
    "ASSET_MAX_DURATION_S", 1800, min_value=1, max_value=14400
)
# Route decoding to its own Celery queue (workers started with `-Q <name>`); unset: the
# default queue.
ASSET_DECODE_QUEUE = env.optional_str("ASSET_DECODE_QUEUE")
# An asset still `processing` this long after its last change lost its worker: the sweep
# (every ASSET_SWEEP_INTERVAL_S) queues its decoding again, and fails it at three times.
ASSET_STUCK_AFTER_S = env.int("ASSET_STUCK_AFTER_S", 600, min_value=10)
ASSET_SWEEP_INTERVAL_S = env.int("ASSET_SWEEP_INTERVAL_S", 300, min_value=10)
# Django's defaults, stated because uploads rely on them: the ASGI handler spools a
# request body to disk past FILE_UPLOAD_MAX_MEMORY_SIZE; form fields other than files
# may total DATA_UPLOAD_MAX_MEMORY_SIZE.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# Recordings (DESIGN §8). A call's WAVs are written while it runs to RECORDING_SPOOL_DIR
# (one directory per call), then moved into default storage when it ends. In the
# production shape the spool must be a volume every server and Celery worker mounts at the
# same path: the worker that finalises a call, or the reaper's after a crash, reads it.
RECORDING_SPOOL_DIR = Path(
    env.str("RECORDING_SPOOL_DIR", str(VAR_DIR / "spool" / "recordings"))
)
# How often the purge of expired recordings runs (Celery beat; embedded: in the server).
RECORDING_PURGE_INTERVAL_S = env.int("RECORDING_PURGE_INTERVAL_S", 3600, min_value=60)
# Rows (and files) deleted per batch by the purge.
RECORDING_PURGE_BATCH = env.int("RECORDING_PURGE_BATCH", 500, min_value=1)
# Lifetime of the signed URL GET /recordings/{id}/audio redirects to on S3.
RECORDING_URL_EXPIRE_S = env.int("RECORDING_URL_EXPIRE_S", 300, min_value=10)

# Events, webhook deliveries and attempts past their environment's event retention, and
# idempotency records past IDEMPOTENCY_TTL_SECONDS, are purged this often, so many rows
# per statement (events/retention.py).
EVENT_PURGE_INTERVAL_S = env.int("EVENT_PURGE_INTERVAL_S", 3600, min_value=60)
EVENT_PURGE_BATCH = env.int("EVENT_PURGE_BATCH", 1000, min_value=1)

# Webhooks (DESIGN §9, events/delivery.py). Production sends only to https:// URLs whose
# every address is publicly routable (no loopback, private, link-local…), checked when an
# endpoint is saved and again before each attempt. The embedded default (local.py) and the
# tests allow http:// and loopback/private hosts so a receiver on your machine works.
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", False)
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", False)
# Each of an attempt's connect, write and read steps may take this long.
WEBHOOK_TIMEOUT_S = env.float("WEBHOOK_TIMEOUT_S", 10.0, min_value=0.1)
# Retries after a timeout, network error, 5xx, 429 or 408: attempt n failed → wait
# min(BASE · 2^(n-1), MAX_DELAY) ±10 % (or Retry-After, if longer); give up once the next
# attempt would fall more than RETRY_WINDOW after the event. The defaults give 16 attempts
# over ~2.7 days: 30 s, 1, 2, 4, 8, 16, 32 min, 1.1, 2.1, 4.3, 8.5 h, then 12 h.
WEBHOOK_RETRY_BASE_S = env.float("WEBHOOK_RETRY_BASE_S", 30.0, min_value=0.01)
WEBHOOK_RETRY_MAX_DELAY_S = env.float(
    "WEBHOOK_RETRY_MAX_DELAY_S", 12 * 3600.0, min_value=0.01
)
WEBHOOK_RETRY_WINDOW_S = env.float(
    "WEBHOOK_RETRY_WINDOW_S", 3 * 24 * 3600.0, min_value=1
)
# After rotate-secret, deliveries carry the old secret's signature too for this long.
WEBHOOK_SECRET_OVERLAP_S = env.float(
    "WEBHOOK_SECRET_OVERLAP_S", 24 * 3600.0, min_value=0
)
# Celery: retries due within this many seconds are queued with a countdown; later ones
# (and any task lost on the way) are queued by the beat sweep once due. Kept below the
# Redis broker's visibility timeout (1 h), past which a countdown task is redelivered.
WEBHOOK_COUNTDOWN_MAX_S = env.float("WEBHOOK_COUNTDOWN_MAX_S", 900.0, min_value=0)
WEBHOOK_SWEEP_INTERVAL_S = env.float("WEBHOOK_SWEEP_INTERVAL_S", 30.0, min_value=1)
# The sweep re-queues a pending delivery overdue by this much, and closes as failed (then
# retries) an attempt unfinished this long plus three timeouts after it began: its worker
# died mid-attempt.
WEBHOOK_SWEEP_GRACE_S = env.float("WEBHOOK_SWEEP_GRACE_S", 60.0, min_value=1)
# Route delivery attempts to their own Celery queue (workers started with `-Q <name>`),
# so a slow receiver's retries never queue behind other work; unset: the default queue.
WEBHOOK_QUEUE = env.optional_str("WEBHOOK_QUEUE")
# The embedded default sends from this many threads of the server process.
WEBHOOK_LOCAL_WORKERS = env.int("WEBHOOK_LOCAL_WORKERS", 4, min_value=1, max_value=64)

# Server-Sent Events: a `: ping` comment after this many idle seconds keeps proxies from
# closing the stream; a client that falls this many events behind is disconnected (it
# resumes with Last-Event-ID, from the log).
SSE_HEARTBEAT_S = env.float("SSE_HEARTBEAT_S", 15.0, min_value=0.05)
SSE_MAX_BUFFERED = env.int("SSE_MAX_BUFFERED", 1000, min_value=10)

# Dial-out media streams (DESIGN §6, streams/). Production refuses stream and
# statusCallback URLs whose host resolves to a loopback, private or link-local address
# (checked on create and again on connect); local.py and test.py allow them.
STREAM_ALLOW_PRIVATE = env.bool("STREAM_ALLOW_PRIVATE", False)
# Opening a stream's socket: each attempt may take STREAM_CONNECT_TIMEOUT_S; after
# STREAM_CONNECT_ATTEMPTS failures (waiting BACKOFF, 2·BACKOFF, 4·BACKOFF… between them)
# the stream fails with `call.stream.failed`.
STREAM_CONNECT_TIMEOUT_S = env.float("STREAM_CONNECT_TIMEOUT_S", 5.0, min_value=0.1)
STREAM_CONNECT_ATTEMPTS = env.int(
    "STREAM_CONNECT_ATTEMPTS", 4, min_value=1, max_value=20
)
STREAM_RETRY_BACKOFF_S = env.float("STREAM_RETRY_BACKOFF_S", 0.5, min_value=0.0)
# Audio queued for a receiver that is not keeping up, per track; beyond it frames are
# dropped (and counted) so a slow receiver never holds the media clock back.
STREAM_SEND_QUEUE_MS = env.int("STREAM_SEND_QUEUE_MS", 2000, min_value=100)
# A twoway receiver's audio waits in a playout buffer this deep (as the live socket's).
STREAM_PLAYOUT_CAPACITY_MS = env.int(
    "STREAM_PLAYOUT_CAPACITY_MS", 10_000, min_value=1000
)
# Live streams write their frame counts to the database this often (never per frame).
STREAM_STATS_INTERVAL_S = env.float("STREAM_STATS_INTERVAL_S", 2.0, min_value=0.1)
# How audio a twoway receiver sends at 8 or 24 kHz reaches 16 kHz: "steady", a polyphase
# filter that keeps step with what arrives (3 ms behind), or a soxr quality. soxr's HQ
# keeps the telephone band flat to 3.7 kHz but delivers 8 kHz audio in ~100 ms bursts;
# LQ halves that, rolling off above 3 kHz.
STREAM_RESAMPLE_QUALITY = env.choice(
    "STREAM_RESAMPLE_QUALITY", "steady", ("steady", "QQ", "LQ", "MQ", "HQ", "VHQ")
)
# The largest frame a receiver may send (a twoway bot's media message).
STREAM_MAX_MESSAGE_BYTES = env.int("STREAM_MAX_MESSAGE_BYTES", 1 << 20, min_value=1024)
STREAM_STATUS_CALLBACK_TIMEOUT_S = env.float(
    "STREAM_STATUS_CALLBACK_TIMEOUT_S", 5.0, min_value=0.1
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}

LOGIN_URL = "/dashboard/login/"
