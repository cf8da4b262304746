"""Settings of the benchmark project; the variant comes from the environment.

``BENCH_VARIANT``: ``bare`` (plain Django), ``rail`` (rail-django, background
delivery), ``rail-sync`` (rail-django, ``SECURITY_EVENT_ASYNC=False``), ``rail-drain`` (rail-django,
``AUDIT_DELIVERY="drain"``: the benchmark process starts ``audit_management drain`` beside it),
``easy-audit``, ``axes``, ``auditlog`` (the reference packages, each with its
documented installation). ``BENCH_DB``: ``sqlite`` (the file ``BENCH_DB_NAME``)
or ``postgresql`` (database ``BENCH_DB_NAME`` on 127.0.0.1, user postgres).

Every variant shares the same middleware stack, views and password hasher;
only the audit package's apps, middleware and backends differ.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
VARIANT = os.environ.get("BENCH_VARIANT", "bare")
BACKEND = os.environ.get("BENCH_DB", "sqlite")
WORK_DIR = Path(os.environ.get("BENCH_WORK_DIR", "/tmp/rail-django-bench"))

SECRET_KEY = "benchmark-only-not-secret-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "benchmarks.project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# MD5 so that password hashing does not dominate the login scenarios.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The load scenario (benchmarks/load.py) runs several gunicorn workers: they share one Redis,
# each variant under its own key prefix, so the failed-login counters are per host, not per worker.
if os.environ.get("BENCH_CACHE_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": os.environ["BENCH_CACHE_URL"],
                          "KEY_PREFIX": os.environ.get("BENCH_CACHE_PREFIX", "bench")}}
# The load scenario's client sends X-Forwarded-For from 127.0.0.1, as a reverse proxy would:
# each package is told, its documented way, to take the client address from that header.
TRUSTED_PROXY = os.environ.get("BENCH_TRUSTED_PROXY")
LOGIN_REDIRECT_URL = "/plain/"
STATIC_URL = "/static/"

if BACKEND == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("BENCH_DB_NAME", "rail_django_bench"),
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
            "NAME": os.environ.get("BENCH_DB_NAME", str(WORK_DIR / "bench.sqlite3")),
            "CONN_MAX_AGE": None,
            # WAL with synchronous=NORMAL, as Django's docs suggest for SQLite in
            # production: a commit does not wait for an fsync (a checkpoint does).
            "OPTIONS": {
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "graphene_django",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
GRAPHENE = {"SCHEMA": "benchmarks.project.schema.schema", "MIDDLEWARE": []}

if VARIANT in ("rail", "rail-sync", "rail-drain"):
    INSTALLED_APPS.append("rail_django")
    MIDDLEWARE.insert(MIDDLEWARE.index("django.contrib.messages.middleware.MessageMiddleware"),
                      "rail_django.security.middleware.context.SecurityContextMiddleware")
    GRAPHENE["MIDDLEWARE"] = ["rail_django.security.graphql.GraphQLAuditMiddleware"]
    SECURITY_EVENT_ASYNC = VARIANT != "rail-sync"
    # rail-drain: requests only append to the journal; `audit_management drain` (its own process) delivers.
    AUDIT_DELIVERY = "drain" if VARIANT == "rail-drain" else "thread"
    # One row per event: the database sink only (the file sink is measured by --file-sink).
    AUDIT_STORE_IN_FILE = os.environ.get("BENCH_FILE_SINK") == "1"
    AUDIT_LOG_FILE = WORK_DIR / f"audit-{os.getpid()}.log"
    # Each benchmark process its own journal: never replay another run's events into this database.
    AUDIT_JOURNAL_DIR = Path(os.environ.get("BENCH_JOURNAL_DIR") or WORK_DIR / f"journal-{os.getpid()}")
    if TRUSTED_PROXY:
        RAIL_DJANGO_TRUSTED_PROXIES = [TRUSTED_PROXY]
    if os.environ.get("BENCH_BATCH_SIZE"):
        AUDIT_BATCH_SIZE = int(os.environ["BENCH_BATCH_SIZE"])
    if os.environ.get("BENCH_QUEUE_SIZE"):
        AUDIT_QUEUE_SIZE = int(os.environ["BENCH_QUEUE_SIZE"])
    if os.environ.get("BENCH_AUDIT_STREAM"):  # benchmarks/stream.py: the stream sink instead of the database sink
        import json

        AUDIT_STREAM = json.loads(os.environ["BENCH_AUDIT_STREAM"])
elif VARIANT == "easy-audit":
    INSTALLED_APPS.append("easyaudit")
    MIDDLEWARE.append("easyaudit.middleware.easyaudit.EasyAuditMiddleware")
    if TRUSTED_PROXY:
        DJANGO_EASY_AUDIT_REMOTE_ADDR_HEADER = "HTTP_X_FORWARDED_FOR"
elif VARIANT == "axes":
    INSTALLED_APPS.append("axes")
    MIDDLEWARE.append("axes.middleware.AxesMiddleware")
    AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", *AUTHENTICATION_BACKENDS]
    # Never lock the benchmark user out: every failed login is then the same work.
    AXES_FAILURE_LIMIT = 10**9
    if TRUSTED_PROXY:
        # django-ipware is not installed: axes' documented hook for the client address instead.
        AXES_CLIENT_IP_CALLABLE = "benchmarks.project.views.forwarded_client_ip"
elif VARIANT == "auditlog":
    INSTALLED_APPS.append("auditlog")
    MIDDLEWARE.append("auditlog.middleware.AuditlogMiddleware")
elif VARIANT != "bare":
    raise RuntimeError(f"unknown BENCH_VARIANT {VARIANT!r}")

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
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"rail_django.audit": {"handlers": ["console"], "level": "WARNING"}},
}
