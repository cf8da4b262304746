"""``python -m tests.stream.manage audit_management ingest ...`` against the test's database and stream."""

import sys

from tests.stream.setup_env import configure

if __name__ == "__main__":
    configure()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *sys.argv[1:]])
