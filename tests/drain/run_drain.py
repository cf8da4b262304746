"""``python -m tests.drain.run_drain [flags]``: ``audit_management drain`` in its own process, on the test settings.

Env ``RAIL_DJANGO_TEST_DB_NAME`` names the test database and ``RAIL_DJANGO_TEST_JOURNAL`` the journal directory.
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = os.environ["RAIL_DJANGO_TEST_DB_NAME"]
    settings.AUDIT_JOURNAL_DIR = os.environ["RAIL_DJANGO_TEST_JOURNAL"]
    settings.AUDIT_DELIVERY = "drain"
    settings.AUDIT_STORE_IN_FILE = False
    django.setup()

    from django.core.management import call_command

    call_command("audit_management", "drain", *sys.argv[1:])


if __name__ == "__main__":
    main()
