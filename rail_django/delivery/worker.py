"""One background worker: a bounded queue drained in batches by a daemon thread.

The dispatcher's writer (database rows and file lines) and the webhook sink
(HTTP deliveries) both run on one of these, so a slow database or receiver
never holds up the thread that queued the work. A worker:

- takes up to ``batch_size`` items at a time and hands them to its
  ``handle`` callable; after the first item of a batch it waits up to
  ``linger`` seconds for more, unless someone is waiting in :meth:`flush`
  or :meth:`put_and_wait`;
- calls ``on_idle`` each time its queue stays empty for ``idle_seconds``;
- is fork-safe: in a child process (``os.fork``, ``gunicorn --preload``)
  the parent's thread and queued items do not exist; every worker forgets
  them right after the fork (one ``os.register_at_fork`` hook for all, set
  when the first worker is made), the child's first use starts a fresh
  thread, and the parent writes what it queued.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

logger = logging.getLogger("rail_django.audit")

T = TypeVar("T")

#: Every live worker of this process, for the after-fork hook.
_workers: weakref.WeakSet[BackgroundWorker] = weakref.WeakSet()
_fork_hook: list[bool] = []  # set once the hook is registered


def _forget_threads_in_child() -> None:
    for worker in list(_workers):
        worker.after_fork_in_child()


def _register(worker: BackgroundWorker) -> None:
    _workers.add(worker)
    if not _fork_hook and hasattr(os, "register_at_fork"):
        _fork_hook.append(True)
        os.register_at_fork(after_in_child=_forget_threads_in_child)


class _Waited:
    """A queued item whose sender waits until it is handled."""

    __slots__ = ("item", "done")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.done = threading.Event()


def _call(hook: Callable[[], None] | None, what: str) -> None:
    if hook is None:
        return
    try:
        hook()
    except Exception:  # a failing hook must not kill the worker
        logger.exception("Audit background worker: %s failed", what)


class BackgroundWorker(Generic[T]):
    """A bounded queue and the daemon thread that drains it (see the module docstring)."""

    def __init__(
        self,
        name: str,
        handle: Callable[[list[T]], None],
        *,
        queue_size: int,
        batch_size: int = 1,
        linger: float = 0.0,
        idle_seconds: float | None = None,
        on_start: Callable[[], None] | None = None,
        on_idle: Callable[[], None] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.batch_size = max(1, batch_size)
        self.linger = linger
        self.idle_seconds = idle_seconds
        self._handle = handle
        self._queue_size = queue_size
        self._hooks = (on_start, on_idle, on_stop)
        self._fresh_state()
        _register(self)

    def _fresh_state(self) -> None:
        # One lock for the queue, the counts and every wait: an emit takes one lock and never wakes
        # anybody unless the thread sleeps for want of work (queue.Queue took two locks per item, plus
        # a third for the pending count, and its thread one per item taken).
        self._items: deque = deque()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._running = False  # the thread is in its loop (cheaper than Thread.is_alive() per put)
        self._start_lock = threading.Lock()
        self._sleeping = False  # the thread waits for a first item: a put wakes it
        self._stopping = False
        self._pending = 0  # queued or being handled
        self._hurry = 0  # threads waiting for the queue to drain: do not linger

    # -- sending -------------------------------------------------------------------
    def put(self, item: T) -> bool:
        """Queue ``item`` without blocking; False when the queue is full (nothing queued)."""
        if not self._running:
            self.start()
        with self._cond:
            if len(self._items) >= self._queue_size:
                return False
            self._items.append(item)
            self._pending += 1
            if self._sleeping:
                self._cond.notify_all()
        return True

    def put_and_wait(self, item: T, timeout: float) -> bool:
        """Queue ``item`` and wait until it is handled; False when that took longer than ``timeout``."""
        self.start()
        waited = _Waited(item)
        deadline = time.monotonic() + timeout
        with self._cond:
            self._hurry += 1
            self._cond.notify_all()  # a lingering batch goes now
        try:
            with self._cond:
                while len(self._items) >= self._queue_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                self._items.append(waited)
                self._pending += 1
                self._cond.notify_all()
            return waited.done.wait(max(0.0, deadline - time.monotonic()))
        finally:
            with self._cond:
                self._hurry -= 1

    def handle_here(self, first: T) -> None:
        """Back-pressure: handle ``first`` and a batch of queued items on the calling thread."""
        with self._cond:
            self._pending += 1
            batch = [first, *self._take(self.batch_size - 1)]
        self._process(batch)

    def is_worker_thread(self) -> bool:
        """Whether the calling thread is this worker's thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    # -- the thread ------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread if it is not running."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                with self._cond:
                    self._stopping = False
                self._running = True
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        on_start, on_idle, on_stop = self._hooks
        _call(on_start, "start")
        try:
            while True:
                with self._cond:
                    stop = False
                    # Idle after idle_seconds without work, however often flush() wakes the thread meanwhile.
                    deadline = None if self.idle_seconds is None else time.monotonic() + self.idle_seconds
                    while not self._items:
                        if self._stopping:
                            stop = True
                            break
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            break  # idle: no items, and on_idle runs below
                        self._sleeping = True
                        self._cond.wait(remaining)
                        self._sleeping = False
                    if stop:
                        break
                    if not self._items:
                        batch = None
                    else:
                        batch = self._take(self.batch_size)
                        if len(batch) < self.batch_size and self.linger and not self._hurry and not self._stopping:
                            self._cond.wait(self.linger)  # more may come (flush() and put_and_wait() cut it short)
                            batch += self._take(self.batch_size - len(batch))
                if batch is None:
                    _call(on_idle, "idle work")
                else:
                    self._process(batch)
            _call(on_stop, "stop")
        finally:
            self._running = False

    def _take(self, limit: int) -> list:
        """Up to ``limit`` queued items (the caller holds the lock)."""
        items = self._items
        if len(items) <= limit:
            taken = list(items)
            items.clear()
            return taken
        return [items.popleft() for _ in range(limit)]

    def _process(self, batch: list) -> None:
        items = [entry.item if entry.__class__ is _Waited else entry for entry in batch]
        try:
            self._handle(items)
        except Exception:
            logger.exception("Audit background worker %s failed on a batch of %d item(s)", self.name, len(items))
        finally:
            for entry in batch:
                if entry.__class__ is _Waited:
                    entry.done.set()
            self._settle(len(batch))

    def _settle(self, count: int) -> None:
        with self._cond:
            self._pending -= count
            if self._pending <= 0 or self._hurry:
                self._cond.notify_all()  # flush() waiters; put_and_wait() waiting for room

    # -- flush / stop ------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Block until every queued item is handled; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._hurry += 1
            self._cond.notify_all()  # a lingering batch goes now
            try:
                while self._pending > 0:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining if remaining is not None else 1.0)
            finally:
                self._hurry -= 1
        return True

    def stop(self, timeout: float | None = 10) -> None:
        """Let the thread finish what is queued, then end it (``on_stop`` runs on it)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if thread is not threading.current_thread():
            thread.join(timeout)

    def after_fork_in_child(self) -> None:
        """Forget the parent's thread and queue (the parent handles what it queued)."""
        self._fresh_state()
