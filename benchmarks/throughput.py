"""Throughput benchmarks, one task per process: emit rate, export, summary and cleanup at table scale.

    python benchmarks/throughput.py emit --db sqlite --async 1 --count 50000 --out R.json
    python benchmarks/throughput.py export --db postgresql --rows 1000000 --format jsonl --out R.json
    python benchmarks/throughput.py summary --db postgresql --rows 10000000 --out R.json
    python benchmarks/throughput.py cleanup --db sqlite --rows 1000000 --out R.json

Large tables are filled once with realistic events spread over 90 days and
kept between runs (SQLite files under ``BENCH_WORK_DIR``, PostgreSQL databases
``rail_django_bench_<rows>`` on 127.0.0.1); ``--fresh`` refills them. The
emit and cleanup tasks use a new database every time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORK_DIR = Path(os.environ.get("BENCH_WORK_DIR", "/tmp/rail-django-bench"))
COLUMNS = (
    "event_id", "event_type", "severity", "user_id", "username", "client_ip", "user_agent", "timestamp",
    "request_path", "request_method", "additional_data", "success", "error_message", "correlation_id", "session_id",
)
# (event type, severity, outcome, weight)
MIX = [
    ("data.read", "info", "success", 40),
    ("ui.action", "info", "success", 10),
    ("auth.login.success", "info", "success", 10),
    ("data.update", "info", "success", 12),
    ("auth.login.failure", "warning", "failure", 8),
    ("data.create", "info", "success", 5),
    ("auth.logout", "info", "success", 5),
    ("authz.permission.denied", "warning", "denied", 3),
    ("data.delete", "warning", "success", 2),
    ("query.blocked.depth", "warning", "blocked", 1),
    ("rate.limit.exceeded", "warning", "blocked", 1),
    ("data.export", "warning", "success", 1),
    ("system.error", "error", "error", 1),
    ("security.alert", "critical", "failure", 1),
]


# -- databases -----------------------------------------------------------------


def pg_admin(sql: str, *params: Any) -> Any:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as conn:
        return conn.execute(sql, params or None).fetchall() if sql.lstrip().upper().startswith("SELECT") else \
            conn.execute(sql, params or None)


def pg_query(database: str, sql: str) -> Any:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=database) as conn:
        return conn.execute(sql).fetchone()[0]


def pg_exists(name: str) -> bool:
    return bool(pg_admin("SELECT 1 FROM pg_database WHERE datname = %s", name))


def pg_drop(name: str) -> None:
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_create(name: str) -> None:
    pg_admin(f'CREATE DATABASE "{name}"')


def database_name(db: str, label: str) -> str:
    if db == "postgresql":
        return f"rail_django_bench_{label}"
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    return str(WORK_DIR / f"{label}.sqlite3")


def drop_database(db: str, name: str) -> None:
    if db == "postgresql":
        pg_drop(name)
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)


def database_exists(db: str, name: str) -> bool:
    return pg_exists(name) if db == "postgresql" else Path(name).exists()


def setup(db: str, name: str, *, variant: str = "rail", fresh: bool = False) -> None:
    """Point the benchmark project at ``name`` (created and migrated if needed) and start Django."""
    if fresh:
        drop_database(db, name)
    if db == "postgresql" and not pg_exists(name):
        pg_create(name)
    os.environ.update(BENCH_VARIANT=variant, BENCH_DB=db, BENCH_DB_NAME=name,
                      DJANGO_SETTINGS_MODULE="benchmarks.project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def audit_table_count() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM rail_django_auditeventmodel")
        return int(cursor.fetchone()[0])


# -- filling -------------------------------------------------------------------


def synthetic_rows(count: int, start: int, total: int, newest: datetime, span: timedelta,
                   seed: int = 7) -> Iterator[tuple]:
    """Rows ``start``..``start + count`` of ``total`` realistic ones (column order :data:`COLUMNS`).

    Timestamps spread evenly over ``span`` before ``newest`` and rise with the
    row number (give or take a few seconds, as with several writers): an audit
    table is written in time order, so recent rows sit together at its end.
    """
    rng = random.Random(seed + start)
    kinds = [m[:3] for m in MIX]
    weights = [m[3] for m in MIX]
    users = [f"user{i:04d}" for i in range(1000)]
    ips = [f"10.{i // 250}.{i % 250}.{(i * 7) % 250 + 1}" for i in range(5000)]
    span_s = span.total_seconds()
    step = span_s / max(1, total)
    picks = rng.choices(kinds, weights, k=count)
    for n, (event_type, severity, outcome) in enumerate(picks, start):
        user = users[n % 1000]
        anonymous = event_type == "auth.login.failure"
        correlation = uuid.UUID(int=rng.getrandbits(128)).hex
        context = {"username_attempted": user} if anonymous else {"page": n % 50}
        if event_type == "security.alert":
            context = {"rule": "failed_logins_per_ip", "key": ips[n % 5000], "count": 10, "window": 300}
        data = {
            "outcome": outcome, "action": event_type, "resource": {"type": "order", "name": None, "id": str(n)},
            "correlation_id": correlation, "risk_score": None, "remote_addr": ips[n % 5000], "context": context,
        }
        yield (
            str(uuid.UUID(int=rng.getrandbits(128), version=4)), event_type, severity,
            None if anonymous else str(n % 1000), None if anonymous else user, ips[(n * 31) % 5000],
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0", newest - timedelta(seconds=max(0.0, span_s - n * step - rng.uniform(0, 5))),
            f"/orders/{n % 997}/", "POST", json.dumps(data), outcome == "success",
            None if outcome == "success" else "failed", correlation, correlation[:32],
        )


def fill(db: str, rows: int, *, start: int = 0, newest: datetime | None = None,
         span: timedelta = timedelta(days=90)) -> float:
    """Insert ``rows`` synthetic events (COPY on PostgreSQL, executemany on SQLite); returns seconds."""
    from django.db import connection, transaction

    newest = newest or datetime.now(timezone.utc)
    started = time.perf_counter()
    chunk = 100_000
    with connection.cursor() as cursor:
        indexes: list[str] = []
        if db == "postgresql" and rows >= 500_000:
            # Building the plain indexes once after the load is much faster than updating them per row.
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'rail_django_auditeventmodel' "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            )
            found = cursor.fetchall()
            indexes = [definition for _, definition in found]
            for index_name, _ in found:
                cursor.execute(f'DROP INDEX "{index_name}"')
        for offset in range(start, start + rows, chunk):
            size = min(chunk, start + rows - offset)
            generated = synthetic_rows(size, offset, start + rows, newest, span)
            if db == "postgresql":
                with cursor.cursor.copy(f"COPY rail_django_auditeventmodel ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in generated:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(COLUMNS))
                sql = f"INSERT INTO rail_django_auditeventmodel ({', '.join(COLUMNS)}) VALUES ({marks})"
                with transaction.atomic():
                    cursor.cursor.executemany(
                        sql, ((r[0].replace("-", ""), *r[1:7], r[7].isoformat(sep=" ").replace("+00:00", ""), *r[8:])
                              for r in generated),
                    )
        for definition in indexes:
            cursor.execute(definition)
        cursor.execute("ANALYZE" if db == "sqlite" else "ANALYZE rail_django_auditeventmodel")
    return time.perf_counter() - started


def _newest_age(db: str, name: str) -> timedelta:
    """How long ago the newest event of a kept database was stored (timedelta.max when unknown)."""
    try:
        if db == "postgresql":
            newest = pg_query(name, "SELECT MAX(timestamp) FROM rail_django_auditeventmodel")
        else:
            import sqlite3

            with sqlite3.connect(name) as conn:
                text = conn.execute("SELECT MAX(timestamp) FROM rail_django_auditeventmodel").fetchone()[0]
            newest = datetime.fromisoformat(text).replace(tzinfo=timezone.utc) if text else None
    except Exception:
        return timedelta.max
    return datetime.now(timezone.utc) - newest if newest else timedelta.max


def ensure_rows(db: str, rows: int, fresh: bool) -> tuple[str, float | None]:
    """Set up the kept large-table database holding exactly ``rows`` events; returns (name, fill seconds)."""
    name = database_name(db, f"{rows}")
    if not fresh and database_exists(db, name) and _newest_age(db, name) > timedelta(hours=1):
        fresh = True  # the "last 24 hours" must hold a fresh day of events, not an aged one
    setup(db, name, fresh=fresh)
    have = audit_table_count()
    if rows <= have <= rows + 1000:  # the commands' own events (data.export, ...) add a few rows
        return name, None
    if have:  # an interrupted or different fill: start again
        from django.db import connections

        connections.close_all()
        drop_database(db, name)
        if db == "postgresql":
            pg_create(name)
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
    return name, fill(db, rows)


# -- memory --------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    return _status_kib("VmHWM") / 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# -- tasks ---------------------------------------------------------------------


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime of another process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def task_emit(args: argparse.Namespace) -> dict[str, Any]:
    """``security.emit`` in a loop, then ``flush``; every event must be stored."""
    async_on = bool(args.async_)
    drained = args.delivery == "drain"
    if drained and not async_on:
        raise SystemExit("--delivery drain needs --async 1")
    name = database_name(args.db, f"emit_{os.getpid()}")
    if drained:  # the drain process must read this process's journal: one directory for both
        os.environ["BENCH_JOURNAL_DIR"] = str(WORK_DIR / f"journal-drain-{os.getpid()}")
    setup(args.db, name, variant="rail-drain" if drained else "rail" if async_on else "rail-sync", fresh=True)
    drain = None
    try:
        if drained:  # AUDIT_DELIVERY = "drain": emit appends to the journal, a drain process delivers
            from benchmarks.requests_worker import start_drain

            drain = start_drain(name, args.db)
        from django.db import connections

        from rail_django.security import EventType, security, use_context

        count = args.count
        with use_context({"user_id": "42", "username": "alice", "client_ip": "203.0.113.7"}):
            security.emit(EventType.DATA_READ, action="warm-up")  # builds the sinks, starts the writer
            security.flush()
            drain_cpu_started = _process_cpu_seconds(drain.pid) if drain else 0.0
            started, cpu_started = time.perf_counter(), time.process_time()
            for i in range(count):
                security.emit(
                    EventType.DATA_READ, action="Viewed order", resource_type="order", resource_id=i,
                    context={"order": i, "fields": ["total", "status"]},
                )
            returned = time.perf_counter() - started
            flushed = security.flush()  # drain mode: waits until the drain process has stored them
            total = time.perf_counter() - started
            # Both threads' CPU: on a loaded machine steadier than the wall clock (which waits for a core).
            cpu = time.process_time() - cpu_started
            drain_cpu = _process_cpu_seconds(drain.pid) - drain_cpu_started if drain else 0.0
        stored = audit_table_count() - 1
        connections.close_all()
    finally:
        from rail_django.delivery.dispatcher import dispatcher

        if drain is not None:
            from benchmarks.requests_worker import stop_drain

            stop_drain(drain)
        dispatcher.shutdown(timeout=30)
        from django.db import connections

        connections.close_all()
        drop_database(args.db, name)
    return {
        "task": "emit", "db": args.db, "async": async_on, "delivery": args.delivery, "flushed": flushed,
        "count": count, "stored": stored, "drain_cpu_us_per_event": 1e6 * drain_cpu / count,
        "events_per_s": count / total, "emit_returned_s": returned, "total_s": total,
        "cpu_us_per_event": 1e6 * cpu / count,
    }


def task_export(args: argparse.Namespace) -> dict[str, Any]:
    """``audit_management export`` of the whole table to a file: rows/s and peak RSS growth."""
    name, filled = ensure_rows(args.db, args.rows, args.fresh)
    from django.core.management import call_command
    from django.db import connection

    connection.close()
    out = WORK_DIR / f"export-{os.getpid()}.{args.format}"
    baseline = rss_mib()
    reset_peak_rss()
    started = time.perf_counter()
    try:
        call_command("audit_management", "export", "--format", args.format, "--output", str(out))
        elapsed = time.perf_counter() - started
        peak = peak_rss_mib()
        size = out.stat().st_size
    finally:
        out.unlink(missing_ok=True)
    return {
        "task": "export", "db": args.db, "rows": args.rows, "format": args.format, "seconds": elapsed,
        "rows_per_s": args.rows / elapsed, "rss_before_mib": baseline, "rss_peak_mib": peak,
        "rss_growth_mib": peak - baseline, "bytes": size, "fill_s": filled,
    }


def task_summary(args: argparse.Namespace) -> dict[str, Any]:
    """``audit_management summary --hours 24``: one warm-up, then the median of ``--repeat`` runs."""
    name, filled = ensure_rows(args.db, args.rows, args.fresh)
    from io import StringIO

    from django.core.management import call_command

    times = []
    for attempt in range(args.repeat + 1):
        started = time.perf_counter()
        call_command("audit_management", "summary", "--hours", "24", "--format", "json", stdout=StringIO())
        if attempt:
            times.append(time.perf_counter() - started)
    return {
        "task": "summary", "db": args.db, "rows": args.rows, "seconds": statistics.median(times),
        "min_s": min(times), "max_s": max(times), "fill_s": filled,
    }


def task_cleanup(args: argparse.Namespace) -> dict[str, Any]:
    """``audit_management cleanup --days 90`` of ``--rows`` expired events (and 1% recent ones kept)."""
    name = database_name(args.db, f"cleanup_{os.getpid()}")
    setup(args.db, name, fresh=True)
    try:
        from io import StringIO

        from django.core.management import call_command
        from django.db import connections

        old = datetime.now(timezone.utc) - timedelta(days=100)
        keep = max(1, args.rows // 100)
        fill(args.db, args.rows, newest=old, span=timedelta(days=90))
        fill(args.db, keep, start=args.rows, span=timedelta(days=30))
        started = time.perf_counter()
        call_command("audit_management", "cleanup", "--days", "90", stdout=StringIO())
        elapsed = time.perf_counter() - started
        from rail_django.security import security

        security.flush()
        left = audit_table_count()
        connections.close_all()
    finally:
        from rail_django.delivery.dispatcher import dispatcher

        dispatcher.shutdown(timeout=30)
        from django.db import connections

        connections.close_all()
        drop_database(args.db, name)
    return {
        "task": "cleanup", "db": args.db, "rows": args.rows, "seconds": elapsed, "rows_per_s": args.rows / elapsed,
        "rows_left": left, "expected_left": keep + 1,  # + the cleanup's own system.config.change event
    }


TASKS = {"emit": task_emit, "export": task_export, "summary": task_summary, "cleanup": task_cleanup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--count", type=int, default=50_000, help="emit: events")
    parser.add_argument("--async", dest="async_", type=int, choices=(0, 1), default=1, help="emit: SECURITY_EVENT_ASYNC")
    parser.add_argument("--delivery", choices=("thread", "drain"), default="thread",
                        help='emit: AUDIT_DELIVERY ("drain" starts `audit_management drain` beside this process)')
    parser.add_argument("--rows", type=int, default=1_000_000, help="export/summary/cleanup: table rows")
    parser.add_argument("--format", default="jsonl", help="export: format")
    parser.add_argument("--repeat", type=int, default=3, help="summary: timed runs")
    parser.add_argument("--fresh", action="store_true", help="refill the kept large-table database")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = TASKS[args.task](args)
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
