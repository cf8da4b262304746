"""Issue 15 benchmark: AUDIT_PARTITIONING on PostgreSQL, one process, one run.

    python benchmarks/partitions.py --rows 10000000 --cleanup-rows 200000 --events 20000 --rounds 5 --out R.json
    python benchmarks/run.py --skip-requests --skip-throughput --sections partitions   # the same, from the suite

Three figures, measured in the same run:

* ``partitions drop`` of one day partition holding ``--rows`` rows (all its
  indexes built), through ``drop_older_than`` (lock, anchor, DETACH, DROP);
* today's batched ``cleanup`` on an unpartitioned table of ``--cleanup-rows``
  expired rows, its rate extrapolated to ``--rows``;
* the database sink's insert rate into a partitioned and an unpartitioned
  table (two databases, same schema), rounds interleaved A/B then B/A; the
  ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.throughput import fill, pg_create, pg_drop  # noqa: E402

TABLE = "rail_django_auditeventmodel"


def start_django(plain: str, partitioned: str) -> None:
    os.environ.update(BENCH_VARIANT="rail", BENCH_DB="postgresql", BENCH_DB_NAME=plain,
                      DJANGO_SETTINGS_MODULE="benchmarks.project.settings")
    from django.conf import settings

    settings.DATABASES["partitioned"] = {**settings.DATABASES["default"], "NAME": partitioned}
    import django

    django.setup()
    from django.core.management import call_command

    for alias in ("default", "partitioned"):
        call_command("migrate", database=alias, verbosity=0, interactive=False)


def events(count: int, when: datetime) -> list[Any]:
    from rail_django.events.types import SecurityEvent

    now = when
    return [
        SecurityEvent(event_type="data.read", timestamp=now, severity="info", outcome="success", action="read",
                      user_id="42", username="alice", client_ip="198.51.100.7", request_path="/orders/",
                      request_method="GET", context={"n": n})
        for n in range(count)
    ]


def insert_rate(alias: str, partitioning: dict[str, Any] | None, count: int, when: datetime, batch: int = 500) -> float:
    from rail_django.sinks.database import DatabaseSink

    sink = DatabaseSink(alias, partitioning)
    batches = [events(batch, when) for _ in range(max(1, count // batch))]
    started = time.perf_counter()
    for rows in batches:
        sink.write(rows)
    return len(batches) * batch / (time.perf_counter() - started)


def cleanup_rate(rows: int) -> dict[str, Any]:
    """Today's batched cleanup on the unpartitioned table: ``rows`` expired rows."""
    from rail_django.operations.cleanup import run_cleanup

    fill("postgresql", rows, newest=datetime.now(UTC) - timedelta(days=100), span=timedelta(days=90))
    started = time.perf_counter()
    result = run_cleanup(days=90)
    seconds = time.perf_counter() - started
    assert result.deleted == rows and not result.partitions, result
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def fill_partition(rows: int, settings: Any) -> tuple[str, datetime, float]:
    """A day partition past every premade one, ``rows`` rows, every index of the table built; returns seconds."""
    from django.db import connections

    from rail_django import partitioning as parts

    covered = max(p.upper for p in parts.partitions("partitioned", TABLE) if p.upper)
    start, end = covered, covered + timedelta(days=1)
    name = parts.partition_name(TABLE, start, "day")
    started = time.perf_counter()
    with connections["partitioned"].cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute(f'CREATE TABLE "{name}" (LIKE "{TABLE}" INCLUDING DEFAULTS)')
        step_ms = 86_400_000 / rows
        cursor.execute(
            f'INSERT INTO "{name}" (event_id, event_type, severity, user_id, client_ip, user_agent, "timestamp", '
            "request_path, request_method, additional_data, success) "
            "SELECT gen_random_uuid(), (ARRAY['data.read','auth.login.success','data.update'])[1 + g %% 3], 'info', "
            "(g %% 5000)::text, '198.51.100.7', 'bench', %s + g * %s * interval '1 millisecond', '/orders/', 'GET', "
            "'{\"outcome\": \"success\"}', true FROM generate_series(0, %s - 1) g",
            [start, step_ms, rows],
        )
        cursor.execute(
            f'ALTER TABLE "{name}" ADD CONSTRAINT bench_range CHECK ("timestamp" IS NOT NULL AND '
            '"timestamp" >= %s AND "timestamp" < %s)', [start, end],
        )
        cursor.execute(f'ALTER TABLE "{TABLE}" ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)', [start, end])
        cursor.execute(f'ANALYZE "{name}"')
    return name, end, time.perf_counter() - started


class StatementTimer:
    """A documented ``connection.execute_wrapper``: each statement of the drop and its seconds."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, float]] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append((" ".join(sql.split())[:90], time.perf_counter() - started))


def start_strace(pid: int, path: Path) -> Any:
    """``strace -T`` on one PostgreSQL backend: the file system calls of the drop, each with its duration."""
    import shutil
    import subprocess

    if shutil.which("strace") is None:
        return None
    process = subprocess.Popen(["strace", "-q", "-T", "-e", "trace=unlink,unlinkat,ftruncate,truncate,fsync,fdatasync,"
                                "openat,close,write,pwrite64,sync_file_range,rename", "-p", str(pid), "-o", str(path)],
                               stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    return process


def strace_summary(path: Path) -> dict[str, Any]:
    """Seconds and count per system call, and the slowest calls, from ``strace -T`` output."""
    import re

    calls: dict[str, list[float]] = {}
    slowest: list[tuple[float, str]] = []
    for line in path.read_text().splitlines():
        match = re.match(r"(\w+)\((.*)\) += .*<([\d.]+)>$", line)
        if match:
            seconds = float(match.group(3))
            calls.setdefault(match.group(1), []).append(seconds)
            slowest.append((seconds, f"{match.group(1)}({match.group(2)[:70]})"))
    slowest.sort(reverse=True)
    return {"calls": {name: {"count": len(v), "seconds": round(sum(v), 4)} for name, v in calls.items()},
            "slowest": [[round(seconds, 4), call] for seconds, call in slowest[:8]]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    stamp = os.getpid()
    plain, partitioned = f"rail_django_bench_plain_{stamp}", f"rail_django_bench_part_{stamp}"
    for name in (plain, partitioned):
        pg_drop(name)
        pg_create(name)
    try:
        start_django(plain, partitioned)
        from django.db import connections

        from rail_django import partitioning as parts

        setting = {"interval": "day", "premake": 4}
        parts.convert("partitioned", TABLE, parts.settings_from(setting))

        if args.drop_only:
            return drop_large_partition(args, setting)
        # 1. insert throughput, interleaved. "steady": rows of a premade partition (the usual case);
        # "legacy": rows of the legacy partition, which until its range ends also keeps the old table's
        # unique indexes beside the (column, timestamp) ones.
        legacy_upper = max(p.upper for p in parts.partitions("partitioned", TABLE) if p.name.endswith("_legacy"))
        steady_at = legacy_upper + timedelta(hours=1)
        legacy_at = datetime.now(UTC)
        variants = [("plain", "default", None, steady_at), ("partitioned", "partitioned", setting, steady_at),
                    ("partitioned_legacy", "partitioned", setting, legacy_at)]
        rates: dict[str, list[float]] = {label: [] for label, *_ in variants}
        for _, alias, value, when in variants:  # warm connections and statement caches
            insert_rate(alias, value, 2000, when)
        for round_ in range(args.rounds):
            shift = round_ % len(variants)
            for label, alias, value, when in variants[shift:] + variants[:shift]:
                rates[label].append(insert_rate(alias, value, args.events, when))
        ratios = [p / q for p, q in zip(rates["partitioned"], rates["plain"], strict=True)]
        legacy_ratios = [p / q for p, q in zip(rates["partitioned_legacy"], rates["plain"], strict=True)]

        # 2. today's batched cleanup on the plain table, extrapolated
        baseline = cleanup_rate(args.cleanup_rows)

        # 3. drop of one large partition through the command's code path
        drop = drop_large_partition(args, setting)
        extrapolated = args.rows / baseline["rows_per_s"]
        return {
            "task": "partitions",
            "insert_events_per_s": {k: statistics.median(v) for k, v in rates.items()},
            "insert_rounds": rates,
            "insert_ratio_partitioned_to_plain": statistics.median(ratios),
            "insert_ratio_range": [min(ratios), max(ratios)],
            "insert_ratio_legacy_to_plain": statistics.median(legacy_ratios),
            "insert_ratio_legacy_range": [min(legacy_ratios), max(legacy_ratios)],
            "events_per_round": args.events,
            **drop,
            "cleanup_baseline": baseline,
            "cleanup_extrapolated_s": extrapolated,
            "drop_speedup": extrapolated / drop["drop_s"],
        }
    finally:
        from django.db import connections

        connections.close_all()
        for name in (plain, partitioned):
            pg_drop(name)


def drop_large_partition(args: argparse.Namespace, setting: dict[str, Any]) -> dict[str, Any]:
    """Fill one day partition with ``--rows`` rows, then drop it through ``drop_older_than``, each statement
    timed (and, with ``--strace``, the backend's file system calls)."""
    from django.db import connections
    from django.test import override_settings

    from rail_django.operations import partitions as ops

    name, upper, filled = fill_partition(args.rows, setting)
    connection = connections["partitioned"]
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{name}"')
        counted = cursor.fetchone()[0]
        cursor.execute(f"SELECT pg_total_relation_size('\"{name}\"')")
        size = cursor.fetchone()[0]
        # An old partition has long been vacuumed and checkpointed: the drop is timed without the fill's
        # autovacuum (its lock would make the drop wait) or its checkpoint competing for the disk.
        cursor.execute(f'VACUUM ANALYZE "{name}"')
        cursor.execute("CHECKPOINT")
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    timer = StatementTimer()
    trace_path = Path(f"/tmp/rail-drop-strace-{os.getpid()}.txt")
    with override_settings(AUDIT_DATABASE_ALIAS="partitioned"):
        earlier = ops.drop_older_than(1, record=False, cutoff=upper - timedelta(days=1))  # the empty ones first
        tracer = start_strace(backend, trace_path) if args.strace else None
        with connection.execute_wrapper(timer):
            started = time.perf_counter()
            dropped = ops.drop_older_than(1, record=False, cutoff=upper)
            drop_s = time.perf_counter() - started
    traced = None
    if tracer is not None:
        tracer.terminate()
        tracer.wait(10)
        traced = strace_summary(trace_path)
        trace_path.unlink(missing_ok=True)
    assert [d.name for d in dropped] == [name], (dropped, earlier)
    statements = [[sql, round(seconds * 1000, 2)] for sql, seconds in timer.statements]
    drop_statement_s = sum(seconds for sql, seconds in timer.statements if sql.upper().startswith("DROP TABLE"))
    return {
        "partition_rows": counted,
        "partition_bytes": size,
        "partition_fill_s": filled,
        "drop_s": drop_s,
        "drop_detach_s": dropped[0].detach_seconds,
        "drop_files_s": dropped[0].drop_seconds,
        "drop_statements_ms": statements,
        # The DROP transaction less its DROP statement: the COMMIT, where PostgreSQL deletes the files.
        "drop_commit_s": dropped[0].drop_seconds - drop_statement_s,
        "strace": traced,
    }


def markdown(result: dict[str, Any], command: str) -> str:
    rates = result["insert_events_per_s"]
    base = result["cleanup_baseline"]
    low, high = result["insert_ratio_range"]
    return "\n".join([
        "| measure | figure |",
        "|---|---|",
        f"| `partitions drop` of one day partition, {result['partition_rows']:,} rows, "
        f"{result['partition_bytes'] / 2**30:.2f} GiB with indexes: the audit table locked (lock, anchor, DETACH) | "
        f"**{result['drop_detach_s'] * 1000:.0f} ms** |",
        f"| ... then DROP in its own transaction (the files deleted; no lock on the audit table) | "
        f"{result['drop_files_s'] * 1000:.0f} ms |",
        f"| ... of which the COMMIT, where PostgreSQL truncates and unlinks the files | "
        f"{result['drop_commit_s'] * 1000:.0f} ms |",
        *([f"| ... time in truncate() system calls of the backend (strace -T, {truncate['count']} calls) | "
           f"{truncate['seconds'] * 1000:.0f} ms |"] if (truncate := ((result.get("strace") or {}).get("calls") or {})
                                                          .get("truncate")) else []),
        f"| ... the whole `drop` call | {result['drop_s'] * 1000:.0f} ms |",
        f"| today's batched `cleanup`, {base['rows']:,} expired rows, unpartitioned | {base['seconds']:.1f} s "
        f"({base['rows_per_s']:,.0f} rows/s) |",
        f"| the same cleanup extrapolated to {result['partition_rows']:,} rows | {result['cleanup_extrapolated_s']:.0f} s "
        f"(drop is {result['drop_speedup']:,.0f}x faster) |",
        f"| database sink inserts, unpartitioned | {rates['plain']:,.0f} events/s |",
        f"| database sink inserts, partitioned (day), into a premade partition | {rates['partitioned']:,.0f} events/s |",
        f"| database sink inserts, partitioned, into the legacy partition (until its range ends) | "
        f"{rates['partitioned_legacy']:,.0f} events/s |",
        f"| partitioned / unpartitioned (median of {len(result['insert_rounds']['plain'])} interleaved rounds) | "
        f"**{result['insert_ratio_partitioned_to_plain']:.3f}** (range {low:.3f}-{high:.3f}) |",
        f"| legacy partition / unpartitioned | {result['insert_ratio_legacy_to_plain']:.3f} "
        f"(range {result['insert_ratio_legacy_range'][0]:.3f}-{result['insert_ratio_legacy_range'][1]:.3f}) |",
        "",
        f"Command: `{command}`",
    ])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the partition dropped")
    parser.add_argument("--cleanup-rows", type=int, default=200_000, help="expired rows of the cleanup baseline")
    parser.add_argument("--events", type=int, default=20_000, help="events per insert round and table")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved insert rounds")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    parser.add_argument("--drop-only", action="store_true", help="only the drop of the large partition")
    parser.add_argument("--strace", action="store_true", help="strace -T the backend's file system calls during the drop")
    args = parser.parse_args(argv)
    result = run(args)
    command = "python benchmarks/partitions.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result["markdown"] = json.dumps(result, indent=1) if args.drop_only else markdown(result, command.strip())
    print(result["markdown"])
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


def section(smoke: bool) -> dict[str, Any]:
    """``make bench``'s partitions section (``benchmarks/run.py``), in a process of its own (it starts Django)."""
    import socket
    import subprocess
    import tempfile

    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        return {"skipped": "PostgreSQL does not answer on 127.0.0.1:5432"}
    rows = 20_000 if smoke else int(os.environ.get("BENCH_PARTITION_ROWS", 10_000_000))
    argv = ["--rows", str(rows)] + (["--cleanup-rows", "2000", "--events", "2000", "--rounds", "3"] if smoke else [])
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "partitions.json"
        subprocess.run([sys.executable, __file__, *argv, "--out", str(out)], check=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        return json.loads(out.read_text())


def section_markdown(result: dict[str, Any]) -> list[str]:
    """The section's part of ``make bench``'s report."""
    if "skipped" in result:
        return ["## Issue 15 — partitions", "", f"Not run: {result['skipped']}.", ""]
    return ["## Issue 15 — partitions", "", result["markdown"], ""]


if __name__ == "__main__":
    main()
