"""``AUDIT_DELIVERY = "drain"``: the request only appends the event to the journal; a drain delivers it.

The app side (:class:`AppendOnlyJournal`) writes each event as one line to this process's
segment in ``<journal>/drain/`` and returns: no writer thread, no queue. It never truncates,
marks or replays a segment; it rotates its segment at ``AUDIT_JOURNAL_SEGMENT_BYTES`` and
then lets go of it (closes it, releasing its ``flock``).

The drain side (:class:`SegmentReader`, used by ``audit_management drain``) reads every
segment from a stored offset up to the last complete line. The offset lives in a sidecar
file per segment (``.<segment>.offset``), replaced atomically once the sinks accepted the
lines before it; a drain killed before that write re-delivers them (the database skips
``event_id`` it has). A segment is deleted once it is fully delivered and no process holds it.

The drain segments live in a ``drain`` subdirectory of the in-process writer's journal
folder, so the writer's orphan replay and the drain never read each other's files.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rail_django.conf import SecurityConfig
from rail_django.delivery.journal import SEGMENT_GLOB, Journal, Segment, journal_directory
from rail_django.events.types import SecurityEvent

logger = logging.getLogger("rail_django.audit")

#: The drain's exclusive lock file in the drain directory: one drain per directory (per host).
LOCK_NAME = "drain.lock"
#: A waiting ``flush()`` leaves ``.hurry-<pid>`` in the drain directory: the drain delivers without lingering.
HURRY_PREFIX = ".hurry-"
#: The drain's doorbell: a Unix datagram socket it waits on between looks at the journal; a waiting
#: ``flush()`` rings it, so the drain looks at once instead of at its next ``--poll``.
DOORBELL_NAME = ".doorbell"
#: Bytes read from a segment at a time.
READ_CHUNK = 1024 * 1024


def drain_directory(config: SecurityConfig) -> Path | None:
    """Where the app appends and the drain reads: ``<journal folder of the primary sink>/drain``."""
    if config.journal_dir is None:
        return None
    if config.stream is not None:
        from rail_django.sinks.stream import stream_journal_directory

        return stream_journal_directory(config.journal_dir, config.stream) / "drain"
    return journal_directory(config.journal_dir, config.database_alias) / "drain"


def offset_path(segment: Path) -> Path:
    """The sidecar file holding how many bytes of ``segment`` the sinks accepted."""
    return segment.with_name(f".{segment.name}.offset")


def read_offset(segment: Path) -> int:
    try:
        return int(offset_path(segment).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def write_offset(segment: Path, offset: int) -> None:
    """Replace the sidecar atomically (write a temporary file, then rename it over)."""
    target = offset_path(segment)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(str(offset))
    os.replace(temporary, target)


def drain_running(directory: Path) -> bool:
    """Whether a drain holds the directory's lock (a shared lock attempt fails against its exclusive one)."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # (releases the shared lock if we got it)
    return False


def ring_doorbell(directory: Path) -> bool:
    """Wake the drain of ``directory`` now; False when no drain listens (it then looks at its next poll)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as bell:
            bell.setblocking(False)
            bell.sendto(b"!", str(directory / DOORBELL_NAME))
    except OSError:  # no drain, a full queue (it is being woken already), or a path too long for AF_UNIX
        return False
    return True


class Doorbell:
    """The drain's side of :func:`ring_doorbell`: waits of up to ``--poll`` seconds that a ring cuts short."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / DOORBELL_NAME
        self._socket: socket.socket | None = None

    def open(self) -> None:
        """Listen (the caller holds the drain lock, so a socket file left here is a dead drain's)."""
        bell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self.path.unlink(missing_ok=True)
            bell.bind(str(self.path))
        except OSError as exc:  # e.g. a path longer than AF_UNIX's ~107 bytes: the drain polls only
            bell.close()
            logger.info("drain: no doorbell at %s (%s); a waiting flush is seen at the next poll.", self.path, exc)
            return
        bell.setblocking(False)
        self._socket = bell

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, less when rung."""
        if self._socket is None:
            time.sleep(seconds)
            return
        if select.select([self._socket], [], [], max(0.0, seconds))[0]:
            while True:  # one look answers every ring so far
                try:
                    self._socket.recv(16)
                except OSError:
                    break

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
            self.path.unlink(missing_ok=True)


#: Age after which a ``.hurry-<pid>`` mark whose process no longer runs is removed by the drain.
STALE_HURRY_SECONDS = 60.0


def _stale_hurry(entry: os.DirEntry) -> bool:
    try:
        if time.time() - entry.stat().st_mtime < STALE_HURRY_SECONDS:
            return False
        os.kill(int(entry.name[len(HURRY_PREFIX):]), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):  # gone already, another user's process, or not a pid
        return False
    return False


# -- the app side ------------------------------------------------------------------------------


class AppendOnlyJournal(Journal):
    """The journal of one process in drain mode: append and rotate only (see the module docstring)."""

    def __init__(self, directory: Path, segment_bytes: int = 64 * 1024 * 1024) -> None:
        super().__init__(directory, segment_bytes)
        #: Segments this process closed, with the bytes it wrote there: what ``wait_delivered`` waits for.
        self._handed_over: list[tuple[Path, int]] = []

    def _close(self, segment: Segment) -> None:
        # Let go of it at once (closing the fd releases the flock): the drain deletes it once delivered.
        segment.closed = True
        if self._current is segment:
            self._current = None
        if segment.size:
            self._handed_over.append((segment.path, segment.size))
        else:
            segment.path.unlink(missing_ok=True)
        if segment.fd is not None:
            os.close(segment.fd)
            segment.fd = None

    def written(self) -> list[tuple[Path, int]]:
        """``(segment, bytes this process wrote)`` for every segment not known to be delivered yet."""
        with self._lock:
            current = self._current
            return [*self._handed_over, *([(current.path, current.size)] if current and current.size else [])]

    def after_fork_in_child(self) -> None:
        super().after_fork_in_child()
        self._handed_over = []

    def wait_delivered(self, timeout: float | None) -> bool:
        """Wait until the drain has delivered everything this process appended; False on timeout.

        Without a timeout it waits while a drain is running, and returns False (logged) when none is:
        the events are safe in the journal, and nothing in this process could ever deliver them.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        hurry = self.directory / f"{HURRY_PREFIX}{os.getpid()}"
        try:
            return self._wait(deadline, hurry)
        finally:
            hurry.unlink(missing_ok=True)

    def _wait(self, deadline: float | None, hurry: Path) -> bool:
        pause = 0.0005
        looks = 0
        while True:
            written = self.written()
            pending = [(path, size) for path, size in written if _undelivered(path, size)]
            delivered = set(written) - set(pending)
            with self._lock:  # forget delivered closed segments (not one handed over meanwhile)
                self._handed_over = [entry for entry in self._handed_over if entry not in delivered]
            if not pending:
                return True
            if not looks:
                hurry.touch()  # the drain stops waiting for more events to batch
                ring_doorbell(self.directory)  # and looks now rather than at its next poll
            now = time.monotonic()
            looks += 1
            timed_out = deadline is not None and now >= deadline
            if timed_out or (deadline is None and looks % 20 == 0 and not drain_running(self.directory)):
                running = timed_out and drain_running(self.directory)
                logger.warning(
                    "Audit flush returns with %d journal segment(s) in %s not delivered yet: %s",
                    len(pending), self.directory,
                    "the drain is behind." if running else "no drain is running (start `manage.py audit_management drain`).",
                )
                return False
            time.sleep(pause if deadline is None else min(pause, max(0.0, deadline - now)))
            pause = min(pause * 2, 0.001)  # (a read per segment: cheap, and the batch is seen within 1 ms)


def _undelivered(path: Path, size: int) -> bool:
    # The drain deletes a segment (then its offset) only once every line of it is delivered.
    return path.exists() and read_offset(path) < size


# -- the drain side ----------------------------------------------------------------------------


@dataclass
class Batch:
    """Complete lines of one segment: their events and where the next batch starts."""

    segment: Path
    events: list[SecurityEvent]
    end: int
    #: Lines that are not events (logged, skipped: they would never become readable).
    unreadable: int = 0


class SegmentReader:
    """Reads the segments of a drain directory from their stored offsets (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock_fd: int | None = None

    def lock(self) -> bool:
        """Take the directory's drain lock; False when another drain holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def segments(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(SEGMENT_GLOB), key=_age)

    def hurried(self) -> bool:
        """Whether a process is waiting in ``flush()`` for the drain.

        The mark of a process killed while it waited would cut every linger short for good: a mark
        older than :data:`STALE_HURRY_SECONDS` whose process is gone is removed.
        """
        found = False
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if entry.name.startswith(HURRY_PREFIX):
                        if _stale_hurry(entry):
                            Path(entry.path).unlink(missing_ok=True)
                        else:
                            found = True
        except FileNotFoundError:
            return False
        return found

    def pending(self) -> tuple[int, int]:
        """``(segments, bytes)`` appended and not delivered yet."""
        count = total = 0
        for segment in self.segments():
            try:
                left = segment.stat().st_size - read_offset(segment)
            except FileNotFoundError:
                continue
            if left > 0:
                count += 1
                total += left
        return count, total

    def batches(self, segment: Path, max_events: int) -> Iterator[Batch]:
        """Batches of up to ``max_events`` complete lines from the stored offset; a partial last line waits."""
        offset = read_offset(segment)
        try:
            handle = open(segment, "rb")
        except FileNotFoundError:
            return
        with handle:
            handle.seek(offset)
            events: list[SecurityEvent] = []
            unreadable = 0
            position = offset
            while True:
                line = handle.readline(READ_CHUNK * 16)
                if not line.endswith(b"\n"):  # end of file, or a line still being written
                    break
                position += len(line)
                try:
                    events.append(SecurityEvent.from_dict(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    unreadable += 1
                    logger.error("Skipping an unreadable line at byte %d of audit journal %s",
                                 position - len(line), segment)
                if len(events) >= max_events:
                    yield Batch(segment, events, position, unreadable)
                    events, unreadable = [], 0
            if events or unreadable:
                yield Batch(segment, events, position, unreadable)

    def finish(self, segment: Path) -> bool:
        """Delete ``segment`` if it is fully delivered and no process holds it; True when deleted."""
        try:
            fd = os.open(segment, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            offset_path(segment).unlink(missing_ok=True)
            return True
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # its process still appends to it
            # Its owner let go: nothing more will be appended. A torn last line (a process killed
            # mid-write) never completes, so it counts as the end.
            size = os.fstat(fd).st_size
            offset = read_offset(segment)
            if offset < size and _complete_lines_end(segment, offset) > offset:
                return False
            if offset < size:
                logger.error("Dropping %d byte(s) of a torn last line at the end of audit journal %s "
                             "(its process was killed mid-write).", size - offset, segment)
            segment.unlink(missing_ok=True)
            offset_path(segment).unlink(missing_ok=True)
            return True
        finally:
            os.close(fd)


def _age(path: Path) -> tuple[float, str]:
    try:
        return path.stat().st_mtime, path.name
    except FileNotFoundError:
        return 0.0, path.name


def _complete_lines_end(segment: Path, offset: int) -> int:
    """The end of the last complete line at or after ``offset``."""
    with open(segment, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    return offset + data.rfind(b"\n") + 1 if b"\n" in data else offset


__all__ = [
    "AppendOnlyJournal", "Batch", "SegmentReader", "drain_directory", "drain_running", "offset_path",
    "read_offset", "write_offset",
]
