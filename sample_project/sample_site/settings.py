"""Settings of the rail-django sample project: a small shop whose staff approve and delete orders.

Environment variables (all optional):

- ``SAMPLE_DATA_DIR``: where ``db.sqlite3`` and ``logs/audit.log`` go (default: this project's folder).
- ``SAMPLE_DEBUG``: ``1`` (default) or ``0``. GraphiQL is served only in debug mode.
- ``SAMPLE_SECRET_KEY``: the secret key (a fixed, public demo key otherwise: never deploy this project).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("SAMPLE_DATA_DIR", BASE_DIR))

SECRET_KEY = os.environ.get("SAMPLE_SECRET_KEY", "sample-project-demo-key-not-secret-" + "0" * 20)
DEBUG = os.environ.get("SAMPLE_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "graphene_django",
    "rail_django",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every event emitted while a request runs gets its user, IP, user agent and correlation id.
    "rail_django.security.middleware.context.SecurityContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "sample_site.urls"
WSGI_APPLICATION = "sample_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        # The audit writer runs in a background thread: wait for the write lock instead of failing.
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Failed-login counting (alerts) uses the default cache; use Redis or Memcached with several processes.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "orders:list"
LOGOUT_REDIRECT_URL = "login"

GRAPHENE = {
    "SCHEMA": "sample_site.schema.schema",
    # One audit event per GraphQL operation (mutations always; queries listed below).
    "MIDDLEWARE": ["rail_django.security.graphql.GraphQLAuditMiddleware"],
}
RAIL_DJANGO_GRAPHQL = {
    "security_settings": {
        # Reading the audit trail is itself audited.
        "audited_query_fields": ["auditEvents", "auditEvent"],
    },
}

# rail-django: the defaults, spelled out so you can see them.
GRAPHQL_ENABLE_AUDIT_LOGGING = True
AUDIT_STORE_IN_DATABASE = True
AUDIT_STORE_IN_FILE = True
AUDIT_LOG_FILE = DATA_DIR / "logs" / "audit.log"
AUDIT_JOURNAL_DIR = DATA_DIR / "logs" / "audit-journal"
AUDIT_RETENTION_DAYS = 90
AUDIT_ALERT_THRESHOLDS = {
    "failed_logins_per_ip": 10,
    "failed_logins_per_user": 5,
    "suspicious_activity_window": 300,
}
