"""A ``manage.py`` for the command tests: the test settings, with the database and audit file from the environment."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.events.command_settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
