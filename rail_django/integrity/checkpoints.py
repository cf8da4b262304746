"""Checkpoints: signed statements of the chain's head, sent where the database's owner cannot write.

A checkpoint says "at time T the chain's row N had hash H", signed with the
chain's key. It is an ordinary event (``system.integrity.checkpoint``)
delivered to every sink: the JSON-lines file, the webhook, the database. The
copies outside the database are the witness: ``audit_management verify
--checkpoints PATH`` fails when the table no longer reaches a checkpoint (rows
deleted at the end, the head wound back, the table emptied) or disagrees with
one (history rewritten).

The sealer publishes one after sealing, at most every
``AUDIT_INTEGRITY_CHECKPOINT_SECONDS`` per process (a timer publishes the last
one of a burst); ``audit_management checkpoint`` publishes one on demand.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rail_django.conf import get_config, on_config_change
from rail_django.events.types import EventType
from rail_django.integrity.signing import Signer

logger = logging.getLogger("rail_django.audit")

CHECKPOINT_TYPE = EventType.SYSTEM_INTEGRITY_CHECKPOINT.value
_MARKER = CHECKPOINT_TYPE.encode()
_FIELDS = ("sequence", "head", "at", "alg", "signer", "signature")


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: at ``at`` (ISO 8601, UTC) the chain's row ``sequence`` had hash ``head``."""

    sequence: int
    head: str
    at: str
    alg: str
    signer: str
    signature: str = ""

    def message(self) -> bytes:
        """The bytes the signature covers."""
        body = {"sequence": self.sequence, "head": self.head, "at": self.at, "alg": self.alg, "signer": self.signer}
        return b"rail-django checkpoint v1\n" + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def to_context(self) -> dict[str, Any]:
        return {"checkpoint": {"v": 1, **{name: getattr(self, name) for name in _FIELDS}}}

    @classmethod
    def from_context(cls, context: Any) -> Checkpoint:
        """Read a checkpoint back from an event's context; ValueError when it is not one."""
        data = context.get("checkpoint") if isinstance(context, dict) else None
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError("no version 1 checkpoint in the event's context")
        sequence = data.get("sequence")
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
            raise ValueError(f"checkpoint sequence {sequence!r} is not a count")
        values = [data.get(name) for name in _FIELDS[1:]]
        if not all(isinstance(value, str) and value for value in values):
            raise ValueError("checkpoint fields head, at, alg, signer and signature must be non-empty text")
        return cls(sequence, *values)


def make_checkpoint(signer: Signer, sequence: int, head: str, at: datetime | None = None) -> Checkpoint:
    """A checkpoint of (``sequence``, ``head``) signed by ``signer``."""
    moment = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    unsigned = Checkpoint(sequence, head, moment.isoformat(timespec="microseconds"), signer.algorithm, signer.signer_id)
    return Checkpoint(**{**unsigned.__dict__, "signature": signer.sign(unsigned.message())})


def publish(checkpoint: Checkpoint) -> Any:
    """Deliver ``checkpoint`` as a ``system.integrity.checkpoint`` event to every sink; the event or None.

    The statement is set after the event is built, so redaction settings can
    never mask its fields (it holds hashes and a signature, no secret).
    """
    from rail_django.delivery.dispatcher import dispatcher
    from rail_django.security import security

    if not get_config().enabled:
        return None
    event = security.build(
        EventType.SYSTEM_INTEGRITY_CHECKPOINT,
        action=f"Integrity checkpoint at sequence {checkpoint.sequence}",
        resource_type="audit_chain",
        resource_id=str(checkpoint.sequence),
    )
    event.context = checkpoint.to_context()
    dispatcher.deliver(event)
    return event


class CheckpointPublisher:
    """Publishes the sealer's checkpoints: at most one per interval per process.

    After a seal, a checkpoint goes out at once when the last one is at least
    an interval old; otherwise a timer sends one when the interval is over, of
    the newest head sealed by then. The interval starts with the process (and
    again when settings change), so a burst of short-lived processes does not
    flood the sinks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_state()
        os.register_at_fork(after_in_child=self._after_fork)

    def _reset_state(self) -> None:
        self._last = time.monotonic()
        self._pending: tuple[int, str, datetime] | None = None
        self._timer: threading.Timer | None = None

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._reset_state()

    def reset(self) -> None:
        """Forget the schedule and cancel a pending timer (settings changed)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._reset_state()

    def sealed(self, sequence: int, head: str, alias: str = "default") -> None:
        """The sealer moved the head to (``sequence``, ``head``)."""
        interval = get_config().integrity_checkpoint_seconds
        if interval <= 0:
            return
        with self._lock:
            self._pending = (sequence, head, datetime.now(timezone.utc))
            wait = self._last + interval - time.monotonic()
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._on_timer)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self._send()

    def _on_timer(self) -> None:
        from django.db import connections

        with self._lock:
            self._timer = None
        try:
            self._send()
        finally:
            connections.close_all()  # this thread's connections only (a synchronous sink may have opened one)

    def _send(self) -> None:
        from rail_django.integrity.signing import chain_signer

        with self._lock:
            pending, self._pending = self._pending, None
            self._last = time.monotonic()
        signer = chain_signer()
        if pending is None or signer is None or not signer.can_sign:
            return
        sequence, head, at = pending
        try:
            publish(make_checkpoint(signer, sequence, head, at))
        except Exception:  # never into the sealer
            logger.exception("Could not publish the integrity checkpoint at sequence %s", sequence)


publisher = CheckpointPublisher()
on_config_change(publisher.reset)


@dataclass(frozen=True)
class FoundCheckpoint:
    """A checkpoint read from a file, with where it was found."""

    checkpoint: Checkpoint
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class CheckpointScan:
    """What :func:`read_checkpoints` found in the files."""

    found: list[FoundCheckpoint]
    malformed: list[str]  # "path:line: why"
    files: list[str]


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        yield from enumerate(handle, start=1)


def read_checkpoints(paths: Iterable[str | os.PathLike]) -> CheckpointScan:
    """Every checkpoint event in the JSON-lines files ``paths`` (audit log files or copies).

    Lines that are not checkpoints are skipped cheaply; a checkpoint line that
    cannot be read is reported in ``malformed``. OSError when a file cannot be read.
    """
    scan = CheckpointScan([], [], [])
    for path in map(Path, paths):
        scan.files.append(str(path))
        for number, line in _lines(path):
            if _MARKER not in line:
                continue
            try:
                data = json.loads(line)
            except ValueError:
                scan.malformed.append(f"{path}:{number}: not a JSON line")
                continue
            if not isinstance(data, dict) or data.get("event_type") != CHECKPOINT_TYPE:
                continue
            try:
                checkpoint = Checkpoint.from_context(data.get("context"))
            except ValueError as exc:
                scan.malformed.append(f"{path}:{number}: {exc}")
                continue
            scan.found.append(FoundCheckpoint(checkpoint, str(path), number))
    return scan
