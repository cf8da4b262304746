"""Settings of the ``manage.py`` subprocesses in test_commands.py: a SQLite file and an audit file of their own."""

import os

from tests.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["RAIL_TEST_COMMAND_DB"]}}
AUDIT_LOG_FILE = os.environ["RAIL_TEST_COMMAND_LOG"]
AUDIT_JOURNAL_DIR = os.environ["RAIL_TEST_COMMAND_JOURNAL"]
AUDIT_ACCOUNT_EVENTS = True
