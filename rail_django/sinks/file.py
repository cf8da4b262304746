"""JSON-lines file sink: one event per line, safe with several writer processes.

Each batch is written with a single ``os.write`` on a descriptor opened with
``O_APPEND`` while holding an exclusive ``flock``, so lines from several
worker processes never interleave. Rotation works two ways: an external
``logrotate`` (the file is re-opened when its inode changes, as
``WatchedFileHandler`` does; use ``create``, not ``copytruncate``), or by size
with ``AUDIT_LOG_FILE_MAX_BYTES`` / ``AUDIT_LOG_FILE_BACKUP_COUNT``, rotated
under the same lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from rail_django.events.types import SecurityEvent
from rail_django.sinks.base import event_line


class FileSink:
    name = "file"

    def __init__(self, path: Path, max_bytes: int = 0, backup_count: int = 5) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        st = os.fstat(fd)
        self._fd, self._inode = fd, (st.st_dev, st.st_ino)
        return fd

    def _current_fd(self) -> int:
        if self._fd is None:
            return self._open()
        try:
            st = os.stat(self.path)
            moved = (st.st_dev, st.st_ino) != self._inode
        except FileNotFoundError:
            moved = True
        if moved:  # rotated away by logrotate or another process
            self._close_fd()
            return self._open()
        return self._fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None

    def _rotate_if_needed(self, fd: int, incoming: int) -> int:
        if not self.max_bytes or os.fstat(fd).st_size + incoming <= self.max_bytes:
            return fd
        if os.fstat(fd).st_size == 0:
            return fd
        if self.backup_count > 0:
            for index in range(self.backup_count - 1, 0, -1):
                src = self.path.with_name(f"{self.path.name}.{index}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            os.truncate(self.path, 0)
        # Keep holding the old descriptor's lock until the new file is open.
        new_fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        os.close(fd)
        st = os.fstat(new_fd)
        self._fd, self._inode = new_fd, (st.st_dev, st.st_ino)
        fcntl.flock(new_fd, fcntl.LOCK_EX)
        return new_fd

    def _locked_fd(self) -> int:
        # Lock, then check the path still names the file we hold: another
        # process may have rotated it while we waited for the lock.
        while True:
            fd = self._current_fd()
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not self._moved():
                return fd
            fcntl.flock(fd, fcntl.LOCK_UN)
            self._close_fd()

    def _moved(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._inode

    def write(self, events: Sequence[SecurityEvent]) -> None:
        data = b"".join(event_line(e) for e in events)
        with self._lock:
            try:
                fd = self._rotate_if_needed(self._locked_fd(), len(data))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                fcntl.flock(fd, fcntl.LOCK_UN)
            except BaseException:
                self._close_fd()  # closing drops the lock; re-open on the next batch
                raise

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        with self._lock:
            self._close_fd()
