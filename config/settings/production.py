"""The production shape: secrets required, HTTPS assumed, services from the environment."""

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASE_URL, database_from_url, env

# PostgreSQL through a bounded pool per process: 8 connections unless
# DATABASE_POOL_MAX_SIZE says otherwise (README: sizing).
DATABASES = {"default": database_from_url(DATABASE_URL, pool_default=8)}

SECRET_KEY = env.str("SECRET_KEY", required=True)
DEBUG = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", [])

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31536000, min_value=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
