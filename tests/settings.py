"""Test settings. ``RAIL_DJANGO_TEST_DB`` picks the backend: sqlite (default), postgresql, mysql."""

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
TEST_OUTPUT = Path(os.environ.get("RAIL_DJANGO_TEST_OUTPUT", tempfile.mkdtemp(prefix="rail-django-tests-")))

SECRET_KEY = "tests-only-not-secret-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

BACKEND = os.environ.get("RAIL_DJANGO_TEST_DB", "sqlite")

if BACKEND == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": f"test_rail_django_{os.getpid()}"},
        }
    }
    # The same database through a loopback TCP proxy that tests/reliability/test_faults.py stops and
    # starts (PostgreSQL refusing connections). The port is one that is free when the settings load.
    import socket

    with socket.socket() as _probe:
        _probe.bind(("127.0.0.1", 0))
        AUDIT_PROXY_PORT = _probe.getsockname()[1]
    DATABASES["audit_proxy"] = {
        **DATABASES["default"],
        "HOST": "127.0.0.1",
        "PORT": str(AUDIT_PROXY_PORT),
        "TEST": {"MIRROR": "default"},
    }
elif BACKEND == "mysql":
    import pymysql

    pymysql.install_as_MySQLdb()
    # Django checks the mysqlclient version it expects; PyMySQL speaks the same API.
    pymysql.version_info = (2, 2, 7, "final", 0)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": "test",
            "USER": os.environ.get("MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
            "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {"NAME": f"test_rail_django_{os.getpid()}", "CHARSET": "utf8mb4"},
        }
    }
else:
    # A file, not :memory:, so the background writer thread shares the data.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(TEST_OUTPUT / "db.sqlite3"),
            "TEST": {"NAME": str(TEST_OUTPUT / f"test-{os.getpid()}.sqlite3")},
            "OPTIONS": {"timeout": 20},
        }
    }

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "graphene_django",
    "rail_django",
    "tests.testapp",
    # Issue 14's integrations, exercised for real in tests/integrations/.
    "rest_framework",
    "rest_framework.authtoken",
    "hijack",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "rail_django.security.middleware.context.SecurityContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
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
            ]
        },
    }
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUDIT_LOG_FILE = TEST_OUTPUT / "logs" / "audit.log"
AUDIT_JOURNAL_DIR = TEST_OUTPUT / "journal"
# Tests assert on rows right after emit; tests of the background writer turn it on.
SECURITY_EVENT_ASYNC = False
# The users the fixtures create would each add account events to the rows other tests count;
# tests/events/ and tests/integrations/ turn these on (the default is True).
AUDIT_ACCOUNT_EVENTS = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"rail_django.audit": {"handlers": ["console"], "level": "WARNING"}},
}
LOGIN_REDIRECT_URL = "/plain/"
# live_server serves static files under this prefix (it fails on requests without it).
STATIC_URL = "/static/"

# GraphQL: the test schema, audited by the middleware a project adds (tests/graphql/).
GRAPHENE = {
    "SCHEMA": "tests.testapp.schema.schema",
    "MIDDLEWARE": ["rail_django.security.graphql.GraphQLAuditMiddleware"],
}
# Model change tracking (tests/tracking/): the models of tests/testapp/models.py.
MEDIA_ROOT = TEST_OUTPUT / "media"
AUDIT_TRACKED_MODELS = {
    "testapp.Invoice": {"exclude": ["notes"], "mask": ["iban"]},
    "testapp.Customer": {},
    "testapp.Product": {},
    "testapp.Tag": {"m2m": ["invoices"]},
}
RAIL_DJANGO_GRAPHQL = {
    "schema_settings": {"enable_extension_mutations": True},
    "security_settings": {"audited_query_fields": [], "mutation_event_types": {}},
}
