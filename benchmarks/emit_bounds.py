"""Bounds of ``security.emit`` throughput, each side measured alone in one process.

    python benchmarks/emit_bounds.py sqlite 50000
    python benchmarks/emit_bounds.py postgresql 50000

- the emitting side alone: ``security.emit`` + ``flush`` with the database sink's ``write`` a no-op
  (event build, journal append, hand-over to the writer thread, the writer's own loop);
- the writer alone: built events through ``DatabaseSink.write``, 500 a batch (rows + INSERT/COPY + commit);
- ``build_event`` alone.

``throughput.py emit`` runs both sides at once on two threads sharing the GIL: its rate is below
either bound. CPU is the process's (both threads), wall the elapsed time.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import throughput  # noqa: E402 (after the path set-up)


def _line(label: str, count: int, wall: float, cpu: float) -> None:
    rate = f"{count / wall:8.0f}/s" if wall else " " * 10
    print(f"{label:34s} {rate}  cpu {1e6 * cpu / count:5.1f} us/event")


def main(db: str, count: int) -> None:
    name = throughput.database_name(db, f"bounds_{os.getpid()}")
    throughput.setup(db, name, variant="rail", fresh=True)
    from django.db import connections

    from rail_django.delivery.dispatcher import dispatcher
    from rail_django.security import EventType, security, use_context
    from rail_django.sinks import DatabaseSink

    def fields(i: int) -> dict:
        return {"action": "Viewed order", "resource_type": "order", "resource_id": i,
                "context": {"order": i, "fields": ["total", "status"]}}

    try:
        with use_context({"user_id": "42", "username": "alice", "client_ip": "203.0.113.7"}):
            security.emit(EventType.DATA_READ, action="warm-up")
            security.flush()
            real = DatabaseSink.write
            DatabaseSink.write = lambda self, events: None  # type: ignore[method-assign]
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(count):
                security.emit(EventType.DATA_READ, **fields(i))
            security.flush()
            _line("emitting side alone (no-op sink)", count, time.perf_counter() - wall, time.process_time() - cpu)
            DatabaseSink.write = real  # type: ignore[method-assign]
            events = [security.build(EventType.DATA_READ, **fields(i)) for i in range(count)]
            sink = DatabaseSink("default")
            cpu, wall = time.process_time(), time.perf_counter()
            for start in range(0, count, 500):
                sink.write(events[start:start + 500])
            _line("writer alone (500 a batch)", count, time.perf_counter() - wall, time.process_time() - cpu)
            cpu = time.process_time()
            for i in range(count):
                security.build(EventType.DATA_READ, **fields(i))
            _line("build_event alone", count, 0.0, time.process_time() - cpu)
    finally:
        dispatcher.shutdown(timeout=30)
        connections.close_all()
        throughput.drop_database(db, name)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sqlite", int(sys.argv[2]) if len(sys.argv) > 2 else 50_000)
