"""A deliberately sound deployment, for ``security_check`` (run in a subprocess; needs Redis)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "k9$Vq2!mZ7@xL4#pR8^tW1&yB6*nC3(eF5)gH0_jK-uM+sD=aQ"  # test only
DEBUG = False
ALLOWED_HOSTS = ["audit.example.com"]
USE_TZ = True
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["RAIL_CHECK_DB"]}}
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "graphene_django",
    "rail_django",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "rail_django.security.middleware.context.SecurityContextMiddleware",
    "rail_django.alerts.lockout.LockoutMiddleware",  # lockout is on: 429 with Retry-After (W060 otherwise)
]
ROOT_URLCONF = "tests.commands.urls_good"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
        "KEY_PREFIX": "rail-django-security-check-test",
        "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
    }
}
GRAPHENE = {"SCHEMA": "tests.commands.schema.schema"}

SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = 31_536_000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
RAIL_DJANGO_TRUSTED_PROXIES = ["10.0.0.0/8"]

AUDIT_LOG_FILE = Path(os.environ["RAIL_CHECK_LOG_DIR"]) / "audit.log"
AUDIT_WEBHOOK_URL = "https://siem.example.com/ingest"
AUDIT_WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
AUDIT_RETENTION_DAYS = 365
AUDIT_INTEGRITY_KEY = "r8ii_0tzjjwr(ugu5#_-meye)qj$&#dz-2ipyu-xq*izw4b_-6"  # test only
AUDIT_LOCKOUT_ENABLED = True
AUTHENTICATION_BACKENDS = [
    "rail_django.security.backends.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
