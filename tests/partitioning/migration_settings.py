"""The test settings on a scratch PostgreSQL database (``RAIL_MIGRATION_DB``), for test_migration_locks.py."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES as _TEST_DATABASES

DATABASES = {"default": {**_TEST_DATABASES["default"], "NAME": os.environ["RAIL_MIGRATION_DB"]}}
