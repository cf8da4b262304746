"""A local journal that makes queued events survive a killed process.

With ``SECURITY_EVENT_ASYNC=True`` an event waits in memory before the
background writer stores it. The journal closes that window: ``emit``
appends the event as one JSON line to this process's journal segment (one
``write()`` into the page cache, which survives SIGKILL of the process)
before it returns, and the writer marks it done once the database has it.

- A segment whose events are all stored is truncated (cheap, frequent).
- A segment that grows past ``AUDIT_JOURNAL_SEGMENT_BYTES`` is closed and a
  new one started; a closed segment is deleted when all its events are stored.
- Events the database refused after every retry stay in their (closed)
  segment: the writer re-delivers such spooled segments when it is idle,
  so they reach the database once it is back.
- Each live process holds an exclusive ``flock`` on its open segment. A
  segment nobody holds belongs to a dead process: it is replayed into the
  database (idempotent on ``event_id``) when a writer starts, and by
  ``manage.py audit_management replay``.

The journal protects against a killed process, not a lost disk or a crash of
the machine (no ``fsync`` per event: that would put disk latency on every
request).
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rail_django.events.types import SecurityEvent
from rail_django.sinks.base import event_line

logger = logging.getLogger("rail_django.audit")

SEGMENT_GLOB = "journal-*.jsonl"
# Unique names per process, across Journal instances (settings may change).
_segment_numbers = itertools.count(1)


@dataclass(eq=False)
class Segment:
    path: Path
    fd: int | None
    appended: int = 0
    done: int = 0
    failed: int = 0
    size: int = 0
    closed: bool = False


class Journal:
    """The journal of one process (see the module docstring)."""

    def __init__(self, directory: Path, segment_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._current: Segment | None = None
        self._closed: list[Segment] = []

    # -- request path ---------------------------------------------------------
    def append(self, event: SecurityEvent) -> Segment:
        """Write ``event`` to the open segment; raises ``OSError`` if the disk refuses."""
        line = event_line(event)
        with self._lock:
            segment = self._current
            if segment is None or segment.size + len(line) > self.segment_bytes and segment.appended:
                segment = self._rotate()
            os.write(segment.fd, line)
            segment.size += len(line)
            segment.appended += 1
            return segment

    # -- writer side -----------------------------------------------------------
    def mark(self, segments: Sequence[Segment | None], stored: bool) -> None:
        """Record that the events of ``segments`` were stored (or finally refused)."""
        counts = Counter(segments)  # a batch's events are in one or two segments: count them in C
        counts.pop(None, None)
        with self._lock:
            for segment, count in counts.items():
                segment.done += count
                if not stored:
                    segment.failed += count
                self._settle(segment)

    def _settle(self, segment: Segment) -> None:
        if segment.done < segment.appended:
            return
        if segment.failed:
            if not segment.closed:
                # Keep its events as a spool; new events go to a fresh segment.
                self._close(segment)
            return
        if segment.closed:
            self._unlink(segment)
        elif segment.size:
            os.ftruncate(segment.fd, 0)
            segment.size = segment.appended = segment.done = 0

    def _rotate(self) -> Segment:
        if self._current is not None:
            self._close(self._current)
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"journal-{os.getpid()}-{next(_segment_numbers)}.jsonl"
        # Created under a name replay does not look at, locked, then renamed: a writer starting in
        # another process must never find (and replay and unlink) a segment its owner has not locked yet.
        creating = self.directory / f".{name}.creating"
        fd = os.open(creating, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while we live
        path = self.directory / name
        os.rename(creating, path)
        self._current = Segment(path, fd)
        return self._current

    def _close(self, segment: Segment) -> None:
        segment.closed = True
        if self._current is segment:
            self._current = None
        if segment.done >= segment.appended and not segment.failed:
            self._unlink(segment)
        else:
            self._closed.append(segment)

    def _unlink(self, segment: Segment) -> None:
        try:
            segment.path.unlink(missing_ok=True)
        finally:
            if segment.fd is not None:
                os.close(segment.fd)
                segment.fd = None
            if segment in self._closed:
                self._closed.remove(segment)

    def spooled(self) -> list[Segment]:
        """Closed segments holding events the database refused."""
        with self._lock:
            return [s for s in self._closed if s.failed and s.done >= s.appended]

    def redeliver(self, segment: Segment, write: Callable[[list[SecurityEvent]], None]) -> int:
        """Write a spooled segment's events again; delete it when that works."""
        events = list(read_events(segment.path))
        for start in range(0, len(events), 500):
            write(events[start:start + 500])
        with self._lock:
            self._unlink(segment)
        return len(events)

    def set_aside(self, events: Sequence[SecurityEvent]) -> Path:
        """Keep events the database refuses for good in ``rejected-*.jsonl``, never replayed."""
        path = self.directory / f"rejected-{os.getpid()}.jsonl"
        with open(path, "ab") as handle:
            handle.writelines(event_line(event) for event in events)
        return path

    def after_fork_in_child(self) -> None:
        # The parent's segment (and its lock) stay the parent's.
        for segment in [self._current, *self._closed]:
            if segment is not None and segment.fd is not None:
                os.close(segment.fd)
        self._lock = threading.Lock()
        self._current = None
        self._closed = []

    def close(self) -> None:
        """Close every segment; spooled ones are unlocked, so the next writer replays them."""
        with self._lock:
            if self._current is not None:
                self._close(self._current)
            for segment in self._closed:
                if segment.fd is not None:
                    os.close(segment.fd)
                    segment.fd = None
            self._closed = []


def journal_directory(base: Path, alias: str) -> Path:
    """The journal folder for one database: ``base / <fingerprint of the database>``.

    Segments are replayed only into the database they were written for, so a
    recreated, swapped or test database never receives another one's events.
    """
    from django.db import connections

    settings_dict = connections[alias].settings_dict
    identity = "|".join(str(settings_dict.get(k) or "") for k in ("ENGINE", "HOST", "PORT", "NAME"))
    return Path(base) / hashlib.sha256(identity.encode()).hexdigest()[:16]


def read_events(path: Path) -> Iterator[SecurityEvent]:
    """The events of a journal file; a torn last line (killed mid-write) is skipped."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            try:
                yield SecurityEvent.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError):
                logger.error("Skipping an unreadable line in audit journal %s", path)


def orphaned_segments(directory: Path) -> Iterator[tuple[Path, int]]:
    """Segments no live process holds, each yielded with its lock held (fd)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(SEGMENT_GLOB)):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live process owns it
            continue
        yield path, fd


def replay_orphans(directory: Path, write: Callable[[list[SecurityEvent]], None], batch_size: int = 500) -> int:
    """Store the events of dead processes' segments, then delete them. Returns the count."""
    total = 0
    for path, fd in orphaned_segments(directory):
        try:
            batch: list[SecurityEvent] = []
            for event in read_events(path):
                batch.append(event)
                if len(batch) >= batch_size:
                    write(batch)
                    total += len(batch)
                    batch = []
            if batch:
                write(batch)
                total += len(batch)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return total
