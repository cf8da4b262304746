"""Settings of the change-tracking benchmark (benchmarks/tracking.py); the variant comes from the environment.

``TRACK_VARIANT``: ``untracked`` (rail-django installed, no model tracked),
``rail`` (``AUDIT_TRACKED_MODELS`` names the model), ``rail-drain`` (the same with
``AUDIT_DELIVERY = "drain"``: ``audit_management drain`` runs beside the worker on the journal
directory ``TRACK_JOURNAL_DIR``), ``auditlog``,
``simple-history``, ``pghistory`` (each reference package with its documented
installation: app, middleware for the actor, registration of the model).
rail-django and its middleware are in every variant, so a ratio to
``untracked`` is the cost of the tracking alone. ``TRACK_DB``: ``sqlite``
(file ``TRACK_DB_NAME``) or ``postgresql`` (database ``TRACK_DB_NAME``).
"""

import os
from pathlib import Path

VARIANT = os.environ.get("TRACK_VARIANT", "untracked")
BACKEND = os.environ.get("TRACK_DB", "sqlite")
WORK_DIR = Path(os.environ.get("TRACK_WORK_DIR", "/tmp/rail-django-track-bench"))

SECRET_KEY = "benchmark-only-not-secret-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "benchmarks.tracking_project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

if BACKEND == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("TRACK_DB_NAME", "rail_track_bench"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "CONN_MAX_AGE": None,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("TRACK_DB_NAME", str(WORK_DIR / "track.sqlite3")),
            "CONN_MAX_AGE": None,
            "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
        }
    }

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rail_django",
    "benchmarks.tracking_project.shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "rail_django.security.middleware.context.SecurityContextMiddleware",
]

# rail-django as the other benchmarks run it: background delivery, the database sink only.
AUDIT_STORE_IN_FILE = False
AUDIT_JOURNAL_DIR = Path(os.environ.get("TRACK_JOURNAL_DIR") or WORK_DIR / f"journal-{os.getpid()}")
AUDIT_LOG_FILE = WORK_DIR / f"audit-{os.getpid()}.log"
AUDIT_TRACKED_MODELS = {}

if VARIANT in ("rail", "rail-drain"):
    AUDIT_TRACKED_MODELS = {"shop.Invoice": {}}
    AUDIT_DELIVERY = "drain" if VARIANT == "rail-drain" else "thread"
elif VARIANT == "auditlog":
    INSTALLED_APPS.append("auditlog")
    MIDDLEWARE.append("auditlog.middleware.AuditlogMiddleware")
elif VARIANT == "simple-history":
    INSTALLED_APPS.append("simple_history")
    MIDDLEWARE.append("simple_history.middleware.HistoryRequestMiddleware")
elif VARIANT == "pghistory":
    INSTALLED_APPS[-1:-1] = ["pgtrigger", "pghistory"]
    MIDDLEWARE.append("pghistory.middleware.HistoryMiddleware")
    # The shop app has no migrations: benchmarks/tracking.py installs the triggers after migrate.
    PGTRIGGER_MIGRATIONS = False
    PGTRIGGER_INSTALL_ON_MIGRATE = False
elif VARIANT != "untracked":
    raise RuntimeError(f"unknown TRACK_VARIANT {VARIANT!r}")

TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True, "OPTIONS": {}}]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"rail_django.audit": {"handlers": ["console"], "level": "WARNING"}},
}
