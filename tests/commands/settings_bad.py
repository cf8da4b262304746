"""A deliberately unsafe deployment, for ``security_check`` (run in a subprocess)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "short"
DEBUG = True
ALLOWED_HOSTS = ["*"]
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
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "rail_django.security.middleware.context.SecurityContextMiddleware",
]
ROOT_URLCONF = "tests.commands.urls_bad"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
GRAPHENE = {"SCHEMA": "tests.commands.schema.schema"}

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
AUDIT_STORE_IN_FILE = True
AUDIT_LOG_FILE = BASE_DIR / "settings_bad.py" / "audit.log"  # a file where a directory must be
AUDIT_WEBHOOK_URL = "http://siem.example.com/ingest"
AUDIT_RETENTION_DAYS = 30
AUDIT_ALERT_THRESHOLDS = {"failed_logins_per_ip": 500, "failed_logins_per_user": 50, "suspicious_activity_window": 10}
AUDIT_LOCKOUT_ENABLED = "yes"  # rail_django.E030
