"""A worker process for the concurrency test: emits events with the background writer on, then flushes.

Run as ``python -m tests.reliability.emitter WORKER COUNT IDS_FILE``; env ``RAIL_DJANGO_TEST_DB_NAME`` names the
test database and ``RAIL_DJANGO_TEST_JOURNAL`` the journal directory. Prints ``ready`` once Django is set up,
waits for a line on stdin, emits COUNT ``data.read`` events (their ids written to IDS_FILE, one a line), flushes,
and exits 0 only when the flush completed.
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = os.environ["RAIL_DJANGO_TEST_DB_NAME"]
    settings.AUDIT_JOURNAL_DIR = os.environ["RAIL_DJANGO_TEST_JOURNAL"]
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = False
    django.setup()

    from rail_django.security import EventType, security

    worker, count, ids_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    print("ready", flush=True)
    sys.stdin.readline()  # start together with the other workers
    ids = []
    for n in range(count):
        event = security.emit(EventType.DATA_READ, action="concurrent load", context={"worker": worker, "n": n})
        ids.append(str(event.event_id))
    flushed = security.flush(timeout=100)
    with open(ids_file, "w") as out:
        out.write("\n".join(ids) + "\n")
    print("flushed" if flushed else "flush timed out", flush=True)
    sys.exit(0 if flushed else 2)


if __name__ == "__main__":
    main()
