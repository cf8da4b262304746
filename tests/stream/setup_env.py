"""Settings of the helper processes of tests/stream (``manage.py``, ``app.py``), from their environment.

``RAIL_DJANGO_TEST_DB_NAME``: the test database; ``RAIL_DJANGO_STREAM``: ``AUDIT_STREAM`` as JSON;
``RAIL_DJANGO_TEST_JOURNAL``: the journal directory; ``RAIL_DJANGO_TEST_DB_PORT``: reach the database on
another port (a proxy the test stops); ``RAIL_DJANGO_TEST_DB_TIMEOUT``: SQLite's lock timeout (seconds).
"""

import json
import os


def configure() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    database = settings.DATABASES["default"]
    database["NAME"] = os.environ["RAIL_DJANGO_TEST_DB_NAME"]
    if os.environ.get("RAIL_DJANGO_TEST_DB_PORT"):
        database["PORT"] = os.environ["RAIL_DJANGO_TEST_DB_PORT"]
    if os.environ.get("RAIL_DJANGO_TEST_DB_TIMEOUT"):
        database.setdefault("OPTIONS", {})["timeout"] = float(os.environ["RAIL_DJANGO_TEST_DB_TIMEOUT"])
    settings.AUDIT_STREAM = json.loads(os.environ["RAIL_DJANGO_STREAM"])
    if os.environ.get("RAIL_DJANGO_TEST_JOURNAL"):
        settings.AUDIT_JOURNAL_DIR = os.environ["RAIL_DJANGO_TEST_JOURNAL"]
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = False
    django.setup()
