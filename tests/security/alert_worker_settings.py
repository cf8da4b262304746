"""Settings of ``alert_worker``: the test settings, sharing the parent's test database and a Redis cache."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["RAIL_ALERT_TEST_DB_NAME"]
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
        "KEY_PREFIX": os.environ["RAIL_ALERT_TEST_KEY_PREFIX"],
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}
AUDIT_ALERT_THRESHOLDS = {"failed_logins_per_ip": 6, "failed_logins_per_user": 100, "suspicious_activity_window": 300}
AUDIT_STORE_IN_FILE = False
SECURITY_EVENT_ASYNC = False
