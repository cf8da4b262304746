"""One-off measurement: the audit admin's list, filter and dashboard pages on a large PostgreSQL table.

    .venv/bin/python benchmarks/admin_large_table.py [--rows 1000000] [--repeat 5] [--fresh]

Fills the database ``rail_django_bench_admin`` on 127.0.0.1 (user ``postgres``)
with ``--rows`` realistic events spread over 90 days (kept between runs
unless ``--fresh``), runs ``ANALYZE``, then requests each page through
Django's test client as a superuser and prints the median wall time of
``--repeat`` runs with the number of SQL queries and the slowest one.
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ["RAIL_DJANGO_TEST_DB"] = "postgresql"
DB_NAME = "rail_django_bench_admin"

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
]
ALERT_EVERY = 20_000  # one security.alert (critical) per this many rows


def create_database() -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def drop_database() -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}"')


def fill(rows: int) -> None:
    from django.db import connection

    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    users = [f"user{i:04d}" for i in range(1000)]
    ips = [f"10.{i // 250}.{i % 250}.{rng.randint(1, 250)}" for i in range(5000)]
    kinds = [m[:3] for m in MIX]
    weights = [m[3] for m in MIX]
    columns = (
        "event_id, event_type, severity, user_id, username, client_ip, user_agent, timestamp, request_path, "
        "request_method, additional_data, success, error_message, correlation_id, session_id"
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor, for COPY
        with raw.copy(f"COPY rail_django_auditeventmodel ({columns}) FROM STDIN") as copy:
            # Rows arrive in time order, as an audit log's do.
            ages = sorted((rng.uniform(0, 90 * 86400) for _ in range(rows)), reverse=True)
            for i, age in enumerate(ages):
                if i % ALERT_EVERY == ALERT_EVERY - 1:
                    event_type, severity, outcome = "security.alert", "critical", "failure"
                else:
                    event_type, severity, outcome = rng.choices(kinds, weights)[0]
                user = rng.choice(users)
                anonymous = event_type == "auth.login.failure"
                ip = rng.choice(ips)
                correlation = uuid.uuid4().hex
                context = {"username_attempted": user} if anonymous else {"page": rng.randint(1, 50)}
                data = {
                    "outcome": outcome, "action": event_type, "resource": {"type": "order", "name": None, "id": str(i)},
                    "correlation_id": correlation, "risk_score": None, "remote_addr": ip, "context": context,
                }
                copy.write_row((
                    str(uuid.uuid4()), event_type, severity, None if anonymous else str(users.index(user)),
                    None if anonymous else user, ip, "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0",
                    now - timedelta(seconds=age), f"/orders/{i % 997}/", "POST",
                    json.dumps(data), outcome == "success", None if outcome == "success" else "failed", correlation,
                    uuid.uuid4().hex[:32],
                ))
        # What autovacuum does soon after a bulk load: statistics and the visibility map.
        cursor.execute("VACUUM ANALYZE rail_django_auditeventmodel")
    print(f"inserted {rows:,} rows in {time.perf_counter() - started:.1f}s")


def measure(repeat: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    from rail_django.models import AuditEventModel

    user, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    with override_settings(GRAPHQL_ENABLE_AUDIT_LOGGING=False):
        client.force_login(user)
    sample = AuditEventModel.objects.filter(event_type="auth.login.failure").order_by("-timestamp").first()
    named = AuditEventModel.objects.exclude(username=None).order_by("-timestamp").first()
    base = "/admin/rail_django/auditeventmodel/"
    pages = [
        ("list", base),
        ("list page 2", f"{base}?p=2"),
        ("list page 50", f"{base}?p=50"),
        ("filter type=auth.login.failure", f"{base}?event_type=auth.login.failure"),
        ("filter type=security.alert (rare)", f"{base}?event_type=security.alert"),
        ("filter severity=warning", f"{base}?severity=warning"),
        ("filter severity=critical (rare)", f"{base}?severity=critical"),
        ("filter outcome=failure", f"{base}?outcome=failure"),
        ("filter outcome=denied", f"{base}?outcome=denied"),
        ("filter outcome=error (rare)", f"{base}?outcome=error"),
        ("filter window=24h", f"{base}?window=24h"),
        ("filter date=past 7 days", f"{base}?timestamp__gte={(datetime.now(timezone.utc) - timedelta(days=7)).date()}+00:00:00%2B00:00"),
        ("filter type+severity+window", f"{base}?event_type=data.delete&severity=warning&window=7d"),
        ("pinned client_ip", f"{base}?client_ip={sample.client_ip}"),
        ("pinned client_ip + failures", f"{base}?client_ip={sample.client_ip}&event_type=auth.login.failure"),
        ("pinned correlation_id", f"{base}?correlation_id={sample.correlation_id}"),
        ("pinned attempted + failures", f"{base}?attempted={sample.additional_data['context']['username_attempted']}&event_type=auth.login.failure"),
        ("search username", f"{base}?q={named.username}"),
        ("search IP", f"{base}?q={sample.client_ip}"),
        ("search correlation id", f"{base}?q={sample.correlation_id}"),
        ("event page", f"{base}{sample.pk}/change/"),
        ("dashboard 1h", f"{base}dashboard/?window=1h"),
        ("dashboard 24h", f"{base}dashboard/?window=24h"),
        ("dashboard 7d", f"{base}dashboard/?window=7d"),
    ]
    print(f"{'page':40} {'median ms':>10} {'max ms':>8} {'queries':>8}  slowest query (ms)")
    for name, url in pages:
        client.get(url)  # warm caches
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
        print(f"{name:40} {statistics.median(times):10.1f} {max(times):8.1f} {len(queries):8d}  "
              f"{float(slowest['time']) * 1000:.1f}: {slowest['sql'][:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fresh", action="store_true", help="drop and refill the benchmark database")
    args = parser.parse_args()
    if args.fresh:
        drop_database()
    create_database()

    import django
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = DB_NAME
    django.setup()
    from django.core.management import call_command

    from rail_django.models import AuditEventModel

    call_command("migrate", verbosity=0)
    have = AuditEventModel.objects.count()
    if have < args.rows:
        fill(args.rows - have)
    print(f"table holds {AuditEventModel.objects.count():,} rows")
    measure(args.repeat)


if __name__ == "__main__":
    main()
