"""A real WSGI server process for the crash tests: the test settings, a given database, a slow database sink.

Run as ``python -m tests.reliability.server PORT``; env ``RAIL_DJANGO_TEST_DB_NAME`` names the test
database and ``RAIL_DJANGO_TEST_JOURNAL`` the journal directory. Every database batch takes
``RAIL_DJANGO_TEST_SLOW_WRITE`` seconds, so events pile up in the queue (and the journal) under load.
"""

import os
import sys
import time


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = os.environ["RAIL_DJANGO_TEST_DB_NAME"]
    settings.AUDIT_JOURNAL_DIR = os.environ["RAIL_DJANGO_TEST_JOURNAL"]
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = False
    django.setup()

    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from django.core.handlers.wsgi import WSGIHandler

    from rail_django.sinks import DatabaseSink

    delay = float(os.environ.get("RAIL_DJANGO_TEST_SLOW_WRITE", "0"))
    original = DatabaseSink.write

    def slow_write(self, events):
        time.sleep(delay)
        return original(self, events)

    DatabaseSink.write = slow_write

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", int(sys.argv[1]), WSGIHandler(), handler_class=Quiet)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
