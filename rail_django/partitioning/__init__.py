"""PostgreSQL range partitions of the audit table on ``timestamp`` (``AUDIT_PARTITIONING``).

The low-level half: bounds, DDL and the catalogue, on one connection, with
raw SQL through ``connection.cursor()``. The database sink calls
:class:`Premaker` before it writes; ``audit_management partitions`` and
``cleanup`` call the rest through :mod:`rail_django.operations.partitions`
(archive, integrity anchor, recorded event).

Layout of a partitioned audit table ``T`` (see docs/scaling.md):

* ``T`` is ``PARTITION BY RANGE ("timestamp")``; its unique indexes carry the
  partition key, ``(id, timestamp)``, ``(event_id, timestamp)``,
  ``(chain_sequence, timestamp)``, because PostgreSQL requires it.
* ``T_legacy`` is the table as it was before :func:`convert`, attached
  without a rewrite as the oldest partition, ``FROM (MINVALUE) TO (B)``.
* ``T_pYYYYMMDD`` one partition per interval (day, week starting Monday, month; UTC).
* ``T_default`` catches rows no partition covers (a clock far ahead): reported
  by ``partitions status`` and ``security_check``; :func:`premake` moves them
  into the partition it creates for them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, transaction

logger = logging.getLogger("rail_django.audit")

INTERVALS = ("day", "week", "month")
DEFAULT_PREMAKE = 4
#: Lock waits of the DDL here (milliseconds): a partition operation gives up rather than queue the table.
LOCK_TIMEOUT_MS = 2000
#: pg_advisory_xact_lock key of partition DDL on one table (several writers premake at once).
_ADVISORY_KEY = 0x5241494C  # "RAIL"
LEGACY_SUFFIX = "_legacy"
DEFAULT_SUFFIX = "_default"
BOUND_CHECK = "rail_partition_bound"

_BOUND = re.compile(r"FROM \((?P<lo>[^)]*)\) TO \((?P<hi>[^)]*)\)")


class PartitioningError(Exception):
    """A partition operation that cannot be done (not PostgreSQL, not partitioned, already partitioned...)."""


@dataclass(frozen=True)
class Settings:
    interval: str
    premake: int


@dataclass(frozen=True)
class Partition:
    """One partition as the catalogue describes it."""

    name: str
    #: None: MINVALUE (the legacy partition), or the default partition.
    lower: datetime | None
    #: None: the default partition.
    upper: datetime | None
    is_default: bool
    estimated_rows: int
    size_bytes: int


def settings_from(value: dict[str, Any] | None) -> Settings | None:
    """``AUDIT_PARTITIONING``'s (validated) value as :class:`Settings`, or None when off."""
    if not value:
        return None
    return Settings(value.get("interval", "month"), value.get("premake", DEFAULT_PREMAKE))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- bounds -------------------------------------------------------------------------------------------


def floor(moment: datetime, interval: str) -> datetime:
    """The start (UTC) of the interval holding ``moment``."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    raise PartitioningError(f"unknown interval {interval!r}; choose one of {', '.join(INTERVALS)}")


def step(start: datetime, interval: str, count: int = 1) -> datetime:
    """``start`` moved ``count`` intervals on (``start`` is an interval's start)."""
    if interval == "day":
        return start + timedelta(days=count)
    if interval == "week":
        return start + timedelta(weeks=count)
    months = start.year * 12 + start.month - 1 + count
    return start.replace(year=months // 12, month=months % 12 + 1)


def partition_name(table: str, start: datetime, interval: str) -> str:
    """``T_p20261203`` (day), ``T_p2026w49`` (ISO week), ``T_p202612`` (month)."""
    if interval == "day":
        suffix = start.strftime("%Y%m%d")
    elif interval == "week":
        year, week, _ = start.isocalendar()
        suffix = f"{year}w{week:02d}"
    else:
        suffix = start.strftime("%Y%m")
    return f"{table}_p{suffix}"


# --- catalogue ----------------------------------------------------------------------------------------


def is_postgresql(alias: str) -> bool:
    return connections[alias].vendor == "postgresql"


def is_partitioned(alias: str, table: str) -> bool:
    """Whether the audit table is a partitioned table (PostgreSQL ``relkind = 'p'``)."""
    if not is_postgresql(alias):
        return False
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [_q(table)]
        )
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def _parse_bound(text: str) -> datetime | None:
    text = text.strip()
    if text.upper() == "MINVALUE":
        return None
    return datetime.fromisoformat(text.strip("'"))


def partitions(alias: str, table: str) -> list[Partition]:
    """The partitions of the audit table, oldest first, the default partition last."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), GREATEST(c.reltuples, 0)::bigint,
                   pg_total_relation_size(c.oid)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass(%s)
            """,
            [_q(table)],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound, estimate, size in rows:
        if bound == "DEFAULT":
            found.append(Partition(name, None, None, True, estimate, size))
            continue
        match = _BOUND.search(bound)
        if match is None:  # not a range over one column: not ours to describe
            continue
        found.append(Partition(name, _parse_bound(match["lo"]), _parse_bound(match["hi"]), False, estimate, size))
    epoch = datetime.min.replace(tzinfo=UTC)
    found.sort(key=lambda p: (p.is_default, p.lower or epoch))
    return found


def default_partition_rows(alias: str, table: str) -> int:
    """Rows in the default partition (exact count: it should be empty or tiny)."""
    name = table + DEFAULT_SUFFIX
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [_q(name)])
        if not cursor.fetchone()[0]:
            return 0
        cursor.execute(f"SELECT count(*) FROM {_q(name)}")
        return cursor.fetchone()[0]


@contextmanager
def _ddl(alias: str, table: str) -> Iterator[Any]:
    """One transaction with a short lock_timeout, serialised with other partition DDL on ``table``."""
    connection = connections[alias]
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
        cursor.execute("SET LOCAL timezone = 'UTC'")
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_ADVISORY_KEY, table])
        yield cursor


def _require_partitioned(alias: str, table: str) -> None:
    if not is_postgresql(alias):
        raise PartitioningError(f"partitioning needs PostgreSQL; the {alias!r} database is {connections[alias].vendor}")
    if not is_partitioned(alias, table):
        raise PartitioningError(
            f"{table} is not partitioned; run 'audit_management partitions convert' first (see docs/scaling.md)"
        )


# --- premake ------------------------------------------------------------------------------------------


def premake(alias: str, table: str, settings: Settings, until: datetime | None = None) -> tuple[list[str], datetime]:
    """Create the missing partitions from the newest one up to ``premake`` intervals past ``until`` (now).

    Returns the names created and the upper bound now covered. Each new
    partition is created as a plain table and ATTACHed (a SHARE UPDATE
    EXCLUSIVE lock on the audit table: reads and inserts go on); rows of its
    range that sit in the default partition are moved into it first.
    """
    _require_partitioned(alias, table)
    until = until or datetime.now(UTC)
    target = step(floor(until, settings.interval), settings.interval, settings.premake + 1)
    created: list[str] = []
    with _ddl(alias, table) as cursor:
        ranges = [p for p in partitions(alias, table) if not p.is_default]
        covered = max((p.upper for p in ranges), default=None)
        start = covered or floor(until, settings.interval)
        has_default = any(p.is_default for p in partitions(alias, table))
        while start < target:
            end = step(floor(start, settings.interval), settings.interval)
            name = partition_name(table, floor(start, settings.interval), settings.interval)
            _create_partition(cursor, table, name, start, end, has_default)
            created.append(name)
            start = end
        covered = max(covered or start, start)
    return created, covered


def _create_partition(cursor: Any, table: str, name: str, start: datetime, end: datetime, has_default: bool) -> None:
    default = table + DEFAULT_SUFFIX
    cursor.execute(f"CREATE TABLE {_q(name)} (LIKE {_q(table)} INCLUDING DEFAULTS INCLUDING STORAGE)")
    if has_default:
        # Strays of this range (a clock that ran ahead) move from the default partition into the new one,
        # else ATTACH would refuse: the default partition may not hold rows of an attached range.
        cursor.execute(
            f'WITH moved AS (DELETE FROM {_q(default)} WHERE "timestamp" >= %s AND "timestamp" < %s RETURNING *) '
            f"INSERT INTO {_q(name)} SELECT * FROM moved",
            [start, end],
        )
    cursor.execute(f"ALTER TABLE {_q(table)} ATTACH PARTITION {_q(name)} FOR VALUES FROM (%s) TO (%s)", [start, end])


class Premaker:
    """The writer's guard: premakes when a batch comes near the last partition made; no query otherwise.

    It remembers the upper bound created so far per database; a batch whose
    newest timestamp falls within one interval of it (or past it) premakes
    again. Failures are logged on ``rail_django.audit`` and never stop the
    insert: the default partition takes the row meanwhile.
    """

    #: Seconds before asking again when the table is not partitioned (the setting is on, convert not run yet).
    RECHECK_SECONDS = 300.0

    def __init__(self) -> None:
        self._covered: dict[str, datetime] = {}
        self._recheck: dict[str, float] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._covered.clear()
            self._recheck.clear()

    def before_write(self, alias: str, table: str, settings: Settings, newest: datetime) -> None:
        """Premake if a row of ``newest`` is within an interval of the last partition made."""
        now = datetime.now(UTC)
        newest = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
        # A clock far ahead must not make partitions for years: past two intervals from now rows wait in
        # the default partition (reported), and the writer stops asking.
        moment = min(max(newest, now), step(floor(now, settings.interval), settings.interval, 2))
        covered = self._covered.get(alias)
        if covered is not None and moment < step(floor(covered, settings.interval), settings.interval, -1):
            return
        if covered is None and time.monotonic() < self._recheck.get(alias, 0.0):
            return
        with self._lock:
            try:
                if not is_partitioned(alias, table):
                    self._recheck[alias] = time.monotonic() + self.RECHECK_SECONDS
                    return
                _, upper = premake(alias, table, settings, until=moment)
                self._covered[alias] = upper
            except Exception as exc:  # never the insert's failure: the default partition holds the rows
                logger.warning("Audit partitions could not be premade (%s); rows go to the default partition.", exc)
                self._recheck[alias] = time.monotonic() + 30.0
                self._covered.pop(alias, None)


#: The one premaker of the process (the database sink's).
premaker = Premaker()


# --- convert / revert ---------------------------------------------------------------------------------


def _indexes(cursor: Any, table: str) -> list[tuple[str, str, bool, bool]]:
    """(name, definition, unique, primary) of ``table``'s indexes."""
    cursor.execute(
        """
        SELECT ic.relname, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = to_regclass(%s) ORDER BY ic.relname
        """,
        [_q(table)],
    )
    return cursor.fetchall()


def _composite_name(table: str, column: str) -> str:
    return f"{table[:40]}_{column}_ts_uniq"


def first_upper_bound(now: datetime, interval: str) -> datetime:
    """The legacy partition's upper bound: the end of the current interval, at least an hour away (rows
    written during the conversion must still fit)."""
    return step(floor(now + timedelta(hours=1), interval), interval)


def convert(alias: str, table: str, settings: Settings, log: Any = None) -> str:
    """Partition the audit table without rewriting it; returns the legacy partition's name.

    1. ``CHECK ("timestamp" < B) NOT VALID`` then ``VALIDATE`` (a scan under SHARE UPDATE EXCLUSIVE:
       inserts go on); ATTACH then trusts it and skips its own scan.
    2. The unique indexes the partitioned table needs, ``(col, timestamp)``, built ``CONCURRENTLY``
       on the table, so ATTACH adopts them instead of building them under its lock.
    3. One short transaction: rename the table to ``T_legacy`` (its indexes too), create the
       partitioned ``T`` (same columns, indexes, an id sequence continuing the old one), attach
       ``T_legacy`` ``FROM (MINVALUE) TO (B)``, add the default partition; then premake.
    """
    say = log or (lambda text: None)
    if not is_postgresql(alias):
        raise PartitioningError(f"partitioning needs PostgreSQL; the {alias!r} database is {connections[alias].vendor}")
    if is_partitioned(alias, table):
        raise PartitioningError(f"{table} is already partitioned")
    connection = connections[alias]
    if not connection.get_autocommit():
        raise PartitioningError("convert builds indexes CONCURRENTLY: run it outside a transaction")
    legacy = table + LEGACY_SUFFIX
    ahead = table[:50] + "_ahead"
    with connection.cursor() as cursor:
        bound = first_upper_bound(datetime.now(UTC), settings.interval)
        cursor.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
        say(f"Checking that every row is before {bound.isoformat()} (CHECK NOT VALID, then VALIDATE)")
        cursor.execute(
            f"ALTER TABLE {_q(table)} DROP CONSTRAINT IF EXISTS {_q(BOUND_CHECK)}, "
            f'ADD CONSTRAINT {_q(BOUND_CHECK)} CHECK ("timestamp" IS NOT NULL AND "timestamp" < %s) NOT VALID',
            [bound],
        )
        # Rows stamped past the bound (a clock that ran ahead) wait in a side table and are inserted again
        # through the partitioned table after the swap (a premade or the default partition takes them).
        cursor.execute(f"DROP TABLE IF EXISTS {_q(ahead)}")
        cursor.execute(f'CREATE TABLE {_q(ahead)} AS SELECT * FROM {_q(table)} WHERE "timestamp" >= %s', [bound])
        if cursor.rowcount:
            say(f"{cursor.rowcount} rows stamped after {bound.isoformat()} set aside until the swap")
            cursor.execute(f'DELETE FROM {_q(table)} WHERE "timestamp" >= %s', [bound])
        cursor.execute("SET lock_timeout = 0")
        cursor.execute(f"ALTER TABLE {_q(table)} VALIDATE CONSTRAINT {_q(BOUND_CHECK)}")
        for column in ("id", "event_id", "chain_sequence"):
            name = _composite_name(table, column)
            say(f"Building unique index {name} ({column}, timestamp) concurrently")
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_q(name)}")  # an invalid leftover of a killed run
            cursor.execute(
                f'CREATE UNIQUE INDEX CONCURRENTLY {_q(name)} ON {_q(table)} ({_q(column)}, "timestamp")'
            )
        cursor.execute("RESET lock_timeout")
    say(f"Swapping in the partitioned table; {table} becomes partition {legacy}")
    with _ddl(alias, table) as cursor:
        cursor.execute(f"ALTER TABLE {_q(table)} RENAME TO {_q(legacy)}")  # ACCESS EXCLUSIVE: writers wait here
        composite = {_composite_name(table, c) for c in ("id", "event_id", "chain_sequence")}
        parent_indexes = []
        for number, (name, definition, unique, primary) in enumerate(_indexes(cursor, legacy)):
            if (unique or primary) and name not in composite:
                continue  # id / event_id / chain_sequence alone: kept on the legacy partition only
            # The partitioned table's index takes the name (migrations name indexes); revert gives it back.
            renamed = f"{legacy[:48]}_idx{number}"
            cursor.execute(f"ALTER INDEX {_q(name)} RENAME TO {_q(renamed)}")
            parent_indexes.append(_on_table(definition, legacy, table))
        cursor.execute(f"CREATE TABLE {_q(table)} (LIKE {_q(legacy)} INCLUDING DEFAULTS INCLUDING STORAGE) "
                       'PARTITION BY RANGE ("timestamp")')
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [_q(legacy)])
        old_sequence = cursor.fetchone()[0]
        cursor.execute(
            "SELECT attidentity FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'id'", [_q(legacy)]
        )
        if old_sequence and cursor.fetchone()[0] == "":
            # A plain sequence (a table reverted earlier): the partitioned table owns it from now on, so dropping
            # the partition it came with does not drop it.
            sequence = old_sequence
            cursor.execute(f"ALTER SEQUENCE {sequence} OWNED BY {_q(table)}.id")
        else:
            # The identity's sequence belongs to the legacy partition (and goes when it is dropped): a new one
            # continues it. No insert can take an id meanwhile: the rename holds the table.
            sequence = _q(f"{table[:50]}_id_seq_p")
            start = 1
            if old_sequence:
                cursor.execute(f"SELECT last_value + 1 FROM {old_sequence}")
                start = cursor.fetchone()[0]
            cursor.execute(f"CREATE SEQUENCE {sequence} START WITH {int(start)} OWNED BY {_q(table)}.id")
        cursor.execute(f"ALTER TABLE {_q(table)} ALTER COLUMN id SET DEFAULT nextval(%s::regclass)", [sequence])
        for definition in parent_indexes:
            cursor.execute(definition)
        cursor.execute(
            f"ALTER TABLE {_q(table)} ATTACH PARTITION {_q(legacy)} FOR VALUES FROM (MINVALUE) TO (%s)", [bound]
        )
        cursor.execute(f"CREATE TABLE {_q(table + DEFAULT_SUFFIX)} PARTITION OF {_q(table)} DEFAULT")
    premaker.reset()
    created, _ = premake(alias, table, settings)
    say(f"Premade {len(created)} partitions: {', '.join(created) or 'none'}")
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        columns = ", ".join(_q(c) for c in _columns(cursor, ahead))
        cursor.execute(f"INSERT INTO {_q(table)} ({columns}) SELECT {columns} FROM {_q(ahead)}")
        cursor.execute(f"DROP TABLE {_q(ahead)}")
    return legacy


def _on_table(definition: str, old: str, new: str) -> str:
    """An index definition of ``old`` turned into the same index on ``new`` (index name as before the rename)."""
    head, _, rest = definition.partition(" ON ")
    rest = re.sub(r"^(ONLY )?(\S+\.)?(" + re.escape(_q(old)) + "|" + re.escape(old) + r")\b", "", rest)
    return f"{head} ON {_q(new)}{rest}"


def revert(alias: str, table: str, log: Any = None) -> int:
    """Back to one plain table; returns the rows moved.

    The legacy partition (or, once it has been dropped, the oldest partition)
    becomes the table again: it keeps its file and its indexes, which take
    back the partitioned table's index names. Rows of the other partitions
    (everything written since :func:`convert`, for the legacy partition) are
    copied into it: that part is a rewrite of those rows, in one transaction
    that holds the audit table (writers wait). The unique constraints on
    ``id``, ``event_id`` and ``chain_sequence`` alone come back with it (built
    under that lock when the base is not the legacy partition), and ids
    continue past every copied one.
    """
    say = log or (lambda text: None)
    _require_partitioned(alias, table)
    legacy = table + LEGACY_SUFFIX
    moved = 0
    with _ddl(alias, table) as cursor:
        cursor.execute("SET LOCAL lock_timeout = 0")
        cursor.execute(f"LOCK TABLE {_q(table)} IN ACCESS EXCLUSIVE MODE")
        found = partitions(alias, table)
        names = [p.name for p in found]
        ranges = [p.name for p in found if not p.is_default]
        base = legacy if legacy in names else (ranges[0] if ranges else None)
        if base is None:
            cursor.execute(f"CREATE TABLE {_q(table + '_base')} (LIKE {_q(table)} INCLUDING DEFAULTS INCLUDING STORAGE)")
            base = table + "_base"
        # The partitioned table's index names, to give back to the base's indexes attached to them.
        cursor.execute(
            """
            SELECT child.relname, parent.relname FROM pg_inherits i
            JOIN pg_class child ON child.oid = i.inhrelid JOIN pg_class parent ON parent.oid = i.inhparent
            JOIN pg_index x ON x.indexrelid = child.oid WHERE x.indrelid = to_regclass(%s)
            """,
            [_q(base)],
        )
        index_names = cursor.fetchall()
        for name in names:
            cursor.execute(f"ALTER TABLE {_q(table)} DETACH PARTITION {_q(name)}")
        cursor.execute(f"ALTER TABLE {_q(base)} DROP CONSTRAINT IF EXISTS {_q(BOUND_CHECK)}")
        column_list = ", ".join(_q(c) for c in _columns(cursor, base))
        for name in names:
            if name == base:
                continue
            cursor.execute(f"INSERT INTO {_q(base)} ({column_list}) SELECT {column_list} FROM {_q(name)}")
            moved += cursor.rowcount
            cursor.execute(f"DROP TABLE {_q(name)}")
        cursor.execute(
            "SELECT attidentity FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'id'", [_q(base)]
        )
        identity = cursor.fetchone()[0] != ""
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [_q(table)])
        sequence = cursor.fetchone()[0]
        issued = 0
        if sequence:
            cursor.execute(f"SELECT last_value + 1 FROM {sequence}")
            issued = cursor.fetchone()[0]
        if not identity and sequence:  # keep the sequence the base's id default draws from
            cursor.execute(f"ALTER SEQUENCE {sequence} OWNED BY {_q(base)}.id")
        cursor.execute(f"DROP TABLE {_q(table)}")
        cursor.execute(f"ALTER TABLE {_q(base)} RENAME TO {_q(table)}")
        for child, parent in index_names:
            cursor.execute(f"ALTER INDEX {_q(child)} RENAME TO {_q(parent)}")
        if base != legacy:
            cursor.execute(f'ALTER TABLE {_q(table)} ADD PRIMARY KEY ("id")')
            cursor.execute(f'ALTER TABLE {_q(table)} ADD UNIQUE ("event_id"), ADD UNIQUE ("chain_sequence")')
        cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {_q(table)}")
        next_id = max(cursor.fetchone()[0], issued)
        if not identity:
            # The base drew ids from the partitioned table's sequence: back to an identity column, as the
            # migrations create it (a catalogue change, no rewrite).
            cursor.execute(f"ALTER TABLE {_q(table)} ALTER COLUMN id DROP DEFAULT")
            if sequence:
                cursor.execute(f"DROP SEQUENCE IF EXISTS {sequence}")
            cursor.execute(f"ALTER TABLE {_q(table)} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
        cursor.execute(f"ALTER TABLE {_q(table)} ALTER COLUMN id RESTART WITH {int(next_id)}")
        for column in ("id", "event_id", "chain_sequence"):
            cursor.execute(f"DROP INDEX IF EXISTS {_q(_composite_name(table, column))}")
    premaker.reset()
    say(f"{table} is one table again (from {base}); {moved} rows moved back from {len(names) - 1} partitions")
    return moved


def _columns(cursor: Any, table: str) -> list[str]:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        [_q(table)],
    )
    return [row[0] for row in cursor.fetchall()]


# --- drop -----------------------------------------------------------------------------------------------


def expired(alias: str, table: str, cutoff: datetime) -> list[Partition]:
    """Range partitions whose every row is older than ``cutoff`` (their upper bound is at or before it)."""
    return [p for p in partitions(alias, table) if not p.is_default and p.upper is not None and p.upper <= cutoff]


def detach(cursor: Any, table: str, name: str) -> None:
    """DETACH one partition, inside the caller's :func:`locked` transaction (its commit is quick: the
    partition's files stay until :func:`drop_detached`)."""
    cursor.execute(f"ALTER TABLE {_q(table)} DETACH PARTITION {_q(name)}")


def drop_detached(alias: str, name: str) -> None:
    """DROP a detached partition in its own transaction.

    Releasing the disk space (unlinking the files, gigabytes for a large
    partition) happens at this commit; no lock on the audit table is held
    meanwhile, so writers and readers never wait for it.
    """
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_q(name)}")


@contextmanager
def locked(alias: str, table: str, name: str) -> Iterator[Any]:
    """A transaction in which ``name`` takes no more writes (SHARE lock) until it is dropped."""
    with _ddl(alias, table) as cursor:
        cursor.execute(f"LOCK TABLE {_q(name)} IN SHARE MODE")
        yield cursor
