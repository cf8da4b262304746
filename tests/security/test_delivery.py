"""The background writer: batching, back-pressure, failure reporting, fork safety."""

import json
import logging
import os
import threading

import pytest
from django.db import connection, connections, models

from rail_django.security import EventType, security
from rail_django.sinks import DatabaseSink

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def async_delivery(settings):
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = False
    yield settings


def test_ten_thousand_emits_then_flush_store_ten_thousand_rows(async_delivery, audit_model):
    ids = {security.emit(EventType.DATA_READ, context={"n": n}).event_id for n in range(10_000)}
    assert security.flush(timeout=120)
    assert audit_model.objects.count() == 10_000
    assert set(audit_model.objects.values_list("event_id", flat=True)) == ids


def test_a_full_queue_makes_the_caller_write_and_loses_nothing(async_delivery, audit_model, monkeypatch):
    async_delivery.AUDIT_QUEUE_SIZE = 5
    async_delivery.AUDIT_BATCH_SIZE = 3
    caller = threading.current_thread()
    writer_may_go, writer_went = threading.Event(), threading.Event()
    original = DatabaseSink.write

    def gated(self, events):
        if threading.current_thread() is not caller:
            writer_may_go.wait(30)  # hold the background writer so the queue fills up
            writer_went.set()
        return original(self, events)

    monkeypatch.setattr(DatabaseSink, "write", gated)
    for n in range(50):
        security.emit(EventType.DATA_READ, context={"n": n})
    # The writer is still held: what is in the table, the emitting thread wrote itself, without waiting.
    assert audit_model.objects.count() >= 50 - 5 - 3  # all but the queue (5) and the held writer batch (3)
    assert not writer_went.is_set()
    writer_may_go.set()
    assert security.flush(timeout=60)
    assert audit_model.objects.count() == 50


def test_async_emit_returns_before_the_row_is_written(async_delivery, audit_model, monkeypatch):
    writer_may_go = threading.Event()
    original = DatabaseSink.write

    def gated(self, events):
        writer_may_go.wait(30)
        return original(self, events)

    monkeypatch.setattr(DatabaseSink, "write", gated)
    event = security.emit(EventType.DATA_READ)
    assert not audit_model.objects.filter(event_id=event.event_id).exists()
    writer_may_go.set()
    assert security.flush(timeout=10)
    assert audit_model.objects.filter(event_id=event.event_id).exists()


def test_database_failure_is_retried_and_reported_not_raised(settings, audit_model, monkeypatch, caplog):
    settings.SECURITY_EVENT_ASYNC = True
    settings.AUDIT_STORE_IN_FILE = False
    calls = {"n": 0}
    original = DatabaseSink.write

    def flaky(self, events):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ConnectionError("database is down")
        return original(self, events)

    monkeypatch.setattr(DatabaseSink, "write", flaky)
    event = security.emit(EventType.DATA_READ)
    assert security.flush(timeout=30)
    assert audit_model.objects.filter(event_id=event.event_id).exists()
    assert calls["n"] == 3


def test_permanent_sink_failure_is_logged_once_per_incident(settings, audit_model, monkeypatch, caplog, tmp_path):
    settings.SECURITY_EVENT_ASYNC = False
    blocked_dir = tmp_path / "not-a-dir"
    blocked_dir.write_text("a file where the log directory should be")
    settings.AUDIT_LOG_FILE = blocked_dir / "audit.log"
    with caplog.at_level(logging.ERROR, logger="rail_django.audit"):
        for _ in range(5):
            security.emit(EventType.DATA_READ)
    failures = [r for r in caplog.records if "Audit sink 'file' failed" in r.getMessage()]
    assert len(failures) == 1
    assert audit_model.objects.filter(event_type="data.read").count() == 5  # the database sink got every event


def test_request_succeeds_when_every_sink_fails(client, settings, monkeypatch, caplog):
    settings.AUDIT_STORE_IN_FILE = False

    def down(self, events):
        raise ConnectionError("database is down")

    monkeypatch.setattr(DatabaseSink, "write", down)
    monkeypatch.setattr("rail_django.delivery.dispatcher.RETRY_DELAYS", (0.0,))
    with caplog.at_level(logging.ERROR, logger="rail_django.audit"):
        assert client.get("/emit/").status_code == 200
        assert security.flush(timeout=30)
    assert any("Audit sink 'database' failed" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_writer_is_fork_safe(async_delivery, audit_model):
    security.emit(EventType.DATA_READ, action="parent before fork")
    security.flush(timeout=10)
    connections.close_all()  # as gunicorn --preload would before forking workers
    pid = os.fork()
    if pid == 0:  # child: must start its own writer and deliver
        code = 1
        try:
            security.emit(EventType.DATA_READ, action="child")
            code = 0 if security.flush(timeout=20) else 2
            connections.close_all()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    security.emit(EventType.DATA_READ, action="parent after fork")
    security.flush(timeout=10)
    actions = sorted(audit_model.objects.values_list("additional_data__action", flat=True))
    assert actions == ["child", "parent after fork", "parent before fork"]


def test_a_failing_sink_raises_one_alert_per_incident(settings, audit_model, tmp_path):
    from rail_django.signals import security_alert

    settings.SECURITY_EVENT_ASYNC = False
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the log directory should be")
    settings.AUDIT_LOG_FILE = blocked / "audit.log"
    alerts = []

    def receiver(sender, **kwargs):
        alerts.append(kwargs)

    security_alert.connect(receiver)
    try:
        for _ in range(10):
            security.emit(EventType.DATA_READ)
    finally:
        security_alert.disconnect(receiver)
    assert [a["rule"] for a in alerts] == ["audit_sink_failure"]
    assert alerts[0]["key"] == "file"
    # ...and the incident is itself recorded through the sink that still works.
    [error] = audit_model.objects.filter(event_type="system.error")
    assert error.severity == "critical"
    assert error.additional_data["context"]["sink"] == "file"
    assert audit_model.objects.filter(event_type="data.read").count() == 10


def test_synchronous_emit_never_closes_the_callers_connection(settings, audit_model):
    # CONN_MAX_AGE=0 (Django's default) marks a connection obsolete at once: only the
    # writer thread may act on that, never the request's own connection.
    settings.SECURITY_EVENT_ASYNC = False
    connection.ensure_connection()
    raw = connection.connection
    security.emit(EventType.DATA_READ)
    assert connection.connection is raw
    assert audit_model.objects.count() == 1


@pytest.mark.parametrize("use_tz", [True, False])
def test_the_plain_insert_stores_what_the_orm_would(settings, audit_model, use_tz):
    """The sink's INSERT (COPY on PostgreSQL) against Django's bulk_create, column by column."""
    import copy
    import uuid

    from rail_django.sinks.database import event_to_row

    settings.USE_TZ = use_tz
    event = security.build(
        EventType.DATA_READ, action="read", context={"name": "Zoë 北京", "n": 2**40, "ratio": 0.25, "list": [1, None]},
        resource_id=7, risk_score=0.5,
    )
    twin = copy.copy(event)
    twin.event_id = uuid.uuid4()
    twin.__dict__.pop("_json_line", None)
    DatabaseSink("default").write([event, event])  # a conflict inside one batch: ignored
    DatabaseSink("default").write([event])  # a single event: one statement
    audit_model.objects.bulk_create([event_to_row(audit_model, twin)])
    columns = [f.column for f in audit_model._meta.concrete_fields if f.column not in ("id", "event_id")]
    text = "CHAR" if connection.vendor == "mysql" else "TEXT"  # the stored text, not a driver's conversion of it
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(f'CAST({c} AS {text})' for c in columns)} "  # noqa: S608 (names from _meta)
            f"FROM {audit_model._meta.db_table} ORDER BY id"
        )
        prepared, orm = cursor.fetchall()
    assert audit_model.objects.count() == 2
    for column, ours, django in zip(columns, prepared, orm, strict=True):
        if column == "additional_data" and ours is not None:
            ours, django = json.loads(ours), json.loads(django)  # same JSON, spacing may differ
        assert ours == django, column
    stored = audit_model.objects.get(event_id=event.event_id)
    assert stored.timestamp == audit_model.objects.get(event_id=twin.event_id).timestamp
    assert stored.additional_data["context"]["name"] == "Zoë 北京"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg 3's Jsonb: PostgreSQL only")
def test_postgresql_json_column_is_encoded_by_orjson_and_stored_as_the_orm_would(audit_model, monkeypatch):
    """The additional_data column goes through orjson (the json module's 5 us per event is ingest's and the
    writer's largest single cost); what orjson cannot encode still goes through json.dumps."""
    import dataclasses
    import datetime as dt
    import decimal
    import uuid

    from django.core.serializers.json import DjangoJSONEncoder
    from django.utils.functional import lazy

    from rail_django.sinks import database

    @dataclasses.dataclass
    class Point:
        x: int

    dumps = database._JsonDumps(DjangoJSONEncoder)
    values = {"a": "Zoë", "f": 0.1, "n": None, "l": [True, 1, "x"], "at": dt.datetime(2026, 1, 2, 3, 4, 5, 678901, dt.UTC),
              "day": dt.date(2026, 1, 2), "t": dt.time(1, 2, 3, 456789), "u": uuid.uuid4(), "d": decimal.Decimal("1.10"),
              "td": dt.timedelta(hours=1), "lazy": lazy(lambda: "text", str)()}
    assert json.loads(dumps(values)) == json.loads(json.dumps(values, cls=DjangoJSONEncoder))
    for odd in ({1: "a"}, {"n": 2**70}):  # orjson refuses: json.dumps writes them
        assert dumps(odd) == json.dumps(odd, cls=DjangoJSONEncoder)
    with pytest.raises(TypeError):  # refused as before
        dumps({"p": Point(1)})

    events = [security.build(EventType.DATA_READ, context={"n": i, "name": "Zoë 北京"}) for i in range(3)]

    encoded = []
    monkeypatch.setattr(database._JsonDumps, "__call__", lambda self, value: encoded.append(value) or b"{}")
    DatabaseSink("default").write(events)  # COPY: the stock model's hand-made rows (orjson, tests/security/test_database_rows.py)
    late = security.build(EventType.DATA_READ, context={"n": 9})
    DatabaseSink("default").write(events[:1] + [late])  # the COPY meets a stored event_id: retried as INSERT
    assert len(encoded) == 2  # the INSERT's rows went through _JsonDumps
    stored = {str(r.event_id): r.additional_data for r in audit_model.objects.all()}
    assert stored[str(late.event_id)] == {}
    assert stored[str(events[1].event_id)]["context"] == {"n": 1, "name": "Zoë 北京"}


def test_a_batch_spans_several_insert_statements(audit_model, monkeypatch):
    from django.test.utils import CaptureQueriesContext

    from rail_django.sinks import database

    monkeypatch.setattr(database, "MAX_ROWS_PER_STATEMENT", 7)
    sink = DatabaseSink("default")
    events = [security.build(EventType.DATA_READ, resource_id=i) for i in range(30)]
    with CaptureQueriesContext(connection) as queries:
        sink.write(events + events[:3])  # a retried tail: ignored, not duplicated
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    if connection.vendor == "sqlite":
        assert len(inserts) == 5  # 33 rows, 7 per statement (elsewhere: one executemany)
    assert audit_model.objects.count() == 30
    assert sorted(int(r.additional_data["resource"]["id"]) for r in audit_model.objects.all()) == list(range(30))


def test_a_retried_batch_stores_only_what_is_missing(audit_model):
    sink = DatabaseSink("default")
    events = [security.build(EventType.DATA_READ, resource_id=i) for i in range(40)]
    sink.write(events[:15])  # stored, then the batch is retried with more events (PostgreSQL: COPY refuses it)
    sink.write(events)
    sink.write(events[-5:])
    assert sorted(int(r.additional_data["resource"]["id"]) for r in audit_model.objects.all()) == list(range(40))


# -- synchronous delivery inside the caller's transaction -------------------------------------------


def _stored_elsewhere(audit_model, event_id) -> bool:
    """Whether another connection (another thread's) sees the row: it is committed, outside our transaction."""
    seen = []

    def look():
        try:
            seen.append(audit_model.objects.filter(event_id=event_id).exists())
        finally:
            connections.close_all()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join(30)
    return seen == [True]


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has one writer: see the next test")
def test_sync_emit_inside_atomic_returns_with_the_row_committed_and_survives_the_rollback(settings, audit_model):
    from django.db import transaction

    settings.SECURITY_EVENT_ASYNC = False
    with pytest.raises(RuntimeError), transaction.atomic():
        event = security.emit(EventType.DATA_DELETE, action="inside the caller's transaction")
        assert _stored_elsewhere(audit_model, event.event_id)  # committed before emit returned
        raise RuntimeError("roll back")
    assert audit_model.objects.filter(event_id=event.event_id).count() == 1


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite only")
def test_sync_emit_inside_atomic_on_sqlite_is_stored_when_the_transaction_ends(settings, audit_model):
    from django.db import transaction

    settings.SECURITY_EVENT_ASYNC = False
    with pytest.raises(RuntimeError), transaction.atomic():
        event = security.emit(EventType.DATA_DELETE, action="inside the caller's transaction")
        raise RuntimeError("roll back")
    assert security.flush(timeout=30)
    assert audit_model.objects.filter(event_id=event.event_id).count() == 1


# -- the background worker (the writer and the webhook sink both run on one) -----------------------


def _recording_worker(**options):
    from rail_django.delivery.worker import BackgroundWorker

    batches: list[list] = []
    worker = BackgroundWorker("test-worker", batches.append, **{"queue_size": 100, **options})
    return worker, batches


def test_the_worker_batches_what_arrives_while_it_lingers():
    worker, batches = _recording_worker(batch_size=50, linger=0.5)
    for n in range(20):
        assert worker.put(n)
    assert worker.flush(timeout=10)
    assert [item for batch in batches for item in batch] == list(range(20))
    assert len(batches) <= 2  # one batch, or two if the thread took the first item before the rest came
    worker.stop()


def test_flush_and_put_and_wait_cut_the_linger_short():
    import time

    worker, batches = _recording_worker(batch_size=50, linger=30)
    started = time.monotonic()
    worker.put("a")
    assert worker.flush(timeout=10)
    assert worker.put_and_wait("b", timeout=10)
    assert time.monotonic() - started < 5
    assert [item for batch in batches for item in batch] == ["a", "b"]
    worker.stop()


def test_the_idle_work_runs_while_someone_keeps_flushing():
    """A process polling flush() (as one waiting for its spool to drain does) must not keep the worker
    from ever being idle: the spool is re-delivered by the idle work."""
    import time

    from rail_django.delivery.worker import BackgroundWorker

    idle = threading.Event()
    worker = BackgroundWorker("test-worker", lambda items: None, queue_size=10, idle_seconds=0.3, on_idle=idle.set)
    worker.put("a")
    deadline = time.monotonic() + 5
    while not idle.is_set() and time.monotonic() < deadline:
        assert worker.flush(timeout=1)
        time.sleep(0.05)
    assert idle.is_set()
    worker.stop()


def test_a_full_worker_queue_refuses_instead_of_blocking():
    from rail_django.delivery.worker import BackgroundWorker

    release = threading.Event()
    handled = []
    worker = BackgroundWorker("test-worker", lambda items: (release.wait(30), handled.extend(items)), queue_size=2)
    accepted = [worker.put(n) for n in range(6)]  # one held by the thread, two queued, the rest refused
    assert accepted.count(False) >= 3 and accepted[:2] == [True, True]
    assert not worker.flush(timeout=0.2)  # still held
    release.set()
    assert worker.flush(timeout=10)
    assert handled == [n for n, ok in enumerate(accepted) if ok]
    worker.stop()


def test_a_failing_batch_does_not_stop_the_worker(caplog):
    from rail_django.delivery.worker import BackgroundWorker

    handled = []

    def handle(items):
        if "bad" in items:
            raise ValueError("refused")
        handled.extend(items)

    worker = BackgroundWorker("test-worker", handle, queue_size=10)
    with caplog.at_level(logging.ERROR, logger="rail_django.audit"):
        worker.put("bad")
        assert worker.flush(timeout=10)
        worker.put("good")
        assert worker.flush(timeout=10)
    assert handled == ["good"]
    assert any("failed on a batch" in r.getMessage() for r in caplog.records)
    worker.stop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_runs_its_own_worker_and_never_the_parents_queue(tmp_path):
    from rail_django.delivery.worker import BackgroundWorker

    release = threading.Event()
    seen = tmp_path / "seen"

    def handle(items):
        release.wait(30)
        with open(seen, "a") as out:
            out.writelines(f"{os.getpid()} {item}\n" for item in items)

    worker = BackgroundWorker("test-worker", handle, queue_size=10)
    worker.put("parent-1")  # held by the parent's thread
    worker.put("parent-2")  # queued in the parent
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            release.set()  # the child's copy of the event: the parent's thread does not run here
            worker.put("child")
            code = 0 if worker.flush(timeout=20) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    release.set()
    assert worker.flush(timeout=20)
    lines = sorted(seen.read_text().splitlines())
    assert lines == sorted([f"{pid} child", f"{os.getpid()} parent-1", f"{os.getpid()} parent-2"])
    worker.stop()


# -- a swapped AUDIT_EVENT_MODEL -----------------------------------------------------------------------


class StampedAuditEvent(models.Model):
    """A custom audit model whose extra columns get their values from a default and from pre_save()."""

    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=64)
    severity = models.CharField(max_length=16)
    user_id = models.CharField(max_length=255, null=True)
    username = models.CharField(max_length=150, null=True)
    client_ip = models.GenericIPAddressField(null=True)
    user_agent = models.TextField(default="")
    timestamp = models.DateTimeField(db_column="occurred_at")
    request_path = models.TextField(default="")
    request_method = models.CharField(max_length=16, default="")
    additional_data = models.JSONField(default=dict, db_column="payload")
    success = models.BooleanField(default=True)
    error_message = models.TextField(null=True)
    correlation_id = models.CharField(max_length=64, null=True)
    session_id = models.CharField(max_length=64, null=True)
    tenant = models.CharField(max_length=32, default="acme", db_column="tenant_code")
    stored_at = models.DateTimeField(null=True)

    class Meta:
        app_label = "testapp"
        db_table = "security_stamped_audit_event"


@pytest.fixture
def stamped_model(settings):
    with connection.schema_editor() as editor:
        editor.create_model(StampedAuditEvent)
    settings.AUDIT_EVENT_MODEL = "testapp.StampedAuditEvent"
    yield StampedAuditEvent
    settings.AUDIT_EVENT_MODEL = "rail_django.AuditEventModel"
    with connection.schema_editor() as editor:
        editor.delete_model(StampedAuditEvent)


@pytest.mark.parametrize("auto_now_add", [False, True], ids=["plain-insert", "bulk_create"])
def test_a_custom_audit_model_gets_every_column(stamped_model, monkeypatch, auto_now_add):
    """Its own column names and a defaulted column (plain INSERT); with an auto_now_add column, bulk_create."""
    field = stamped_model._meta.get_field("stored_at")
    monkeypatch.setattr(field, "auto_now_add", auto_now_add)
    sink = DatabaseSink("default")
    events = [security.build(EventType.DATA_READ, action="read", context={"n": n, "name": "Zoë"}) for n in range(3)]
    sink.write(events)
    sink.write(events[:1])  # a retry: ignored
    rows = list(stamped_model.objects.order_by("pk"))
    assert [r.event_id for r in rows] == [e.event_id for e in events]
    assert all(r.tenant == "acme" for r in rows)
    assert [r.additional_data["context"] for r in rows] == [{"n": n, "name": "Zoë"} for n in range(3)]
    assert [r.timestamp for r in rows] == [e.timestamp for e in events]
    assert all((r.stored_at is not None) == auto_now_add for r in rows)
