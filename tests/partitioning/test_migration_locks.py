"""Every migration of the package runs on a 1,000,000-row audit table while another connection keeps inserting
with a short lock_timeout: none of those inserts may wait past it (only brief catalogue locks, or CONCURRENTLY)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

ROWS = 1_000_000
LOCK_TIMEOUT_MS = 500
TABLE = "rail_django_auditeventmodel"
MIGRATIONS = sorted(p.stem for p in (Path(__file__).parents[2] / "rail_django" / "migrations").glob("[0-9][0-9][0-9][0-9]_*.py"))
ROOT = Path(__file__).parents[2]


def _connect(dbname: str) -> psycopg.Connection:
    db = settings.DATABASES["default"]
    return psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=dbname, autocommit=True)


def _migrate(dbname: str, target: str) -> float:
    env = {**os.environ, "RAIL_MIGRATION_DB": dbname, "RAIL_DJANGO_TEST_DB": "postgresql",
           "DJANGO_SETTINGS_MODULE": "tests.partitioning.migration_settings", "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "django", "migrate", "rail_django", target, "--verbosity", "0"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return time.monotonic() - started


class Inserter(threading.Thread):
    """Inserts one row at a time with ``lock_timeout``; counts the inserts and the lock timeouts."""

    def __init__(self, dbname: str) -> None:
        super().__init__(daemon=True)
        self.dbname, self.stop, self.inserted, self.timeouts, self.slowest = dbname, threading.Event(), 0, [], 0.0

    def run(self) -> None:
        with _connect(self.dbname) as conn:
            conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    conn.execute(
                        f"INSERT INTO {TABLE} (event_id, event_type, severity, user_agent, timestamp, request_path, "
                        "request_method, additional_data, success) VALUES (gen_random_uuid(), 'data.read', 'info', '', "
                        "now(), '', '', '{}', true)"
                    )
                    self.inserted += 1
                except psycopg.errors.LockNotAvailable as exc:
                    self.timeouts.append(str(exc))
                self.slowest = max(self.slowest, time.monotonic() - started)
                time.sleep(0.01)


@pytest.mark.slow
def test_every_migration_takes_only_brief_locks_on_a_million_rows():
    dbname = f"rail_migrations_{os.getpid()}"
    with _connect("postgres") as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{dbname}"')
    try:
        _migrate(dbname, MIGRATIONS[0])
        with _connect(dbname) as conn:
            conn.execute(
                f"INSERT INTO {TABLE} (event_id, event_type, severity, user_agent, timestamp, request_path, "
                "request_method, additional_data, success) SELECT gen_random_uuid(), 'data.read', 'info', '', "
                f"now() - g * interval '1 second', '', '', '{{}}', true FROM generate_series(1, {ROWS}) g"
            )
            conn.execute(f"VACUUM ANALYZE {TABLE}")
        report = []
        for target in MIGRATIONS[1:]:
            inserter = Inserter(dbname)
            inserter.start()
            took = _migrate(dbname, target)
            inserter.stop.set()
            inserter.join(timeout=30)
            report.append((target, round(took, 1), inserter.inserted, round(inserter.slowest, 3)))
            assert not inserter.timeouts, f"{target} held the audit table: {inserter.timeouts[0]}"
            assert inserter.inserted > 0, f"no insert went through while {target} ran"
        with _connect(dbname) as conn:
            invalid = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0]
            assert invalid == 0
            unique = conn.execute(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'u'", [TABLE]
            ).fetchone()[0]
            assert unique == 2  # event_id, chain_sequence
        print("migration, seconds, inserts meanwhile, slowest insert (s):", report)
    finally:
        with _connect("postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
