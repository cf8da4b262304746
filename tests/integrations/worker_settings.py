"""Settings of the Celery worker process the integration tests start: the file sink only, in a test folder."""

import os

from tests.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["RAIL_TEST_WORKER_DB"]}}
AUDIT_STORE_IN_DATABASE = False  # the worker writes JSON lines the test reads
AUDIT_STORE_IN_FILE = True
AUDIT_LOG_FILE = os.environ["RAIL_TEST_WORKER_LOG"]
AUDIT_JOURNAL_DIR = os.environ["RAIL_TEST_WORKER_JOURNAL"]
SECURITY_EVENT_ASYNC = False
