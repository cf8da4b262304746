"""AUDIT_STREAM's validation: each kind of mistake has its check id (E100-E106); a valid value builds the sinks."""

from __future__ import annotations

import pytest

from rail_django.conf import StreamConfig, get_config
from rail_django.sinks import DatabaseSink, StreamSink, build_sinks
from tests.security.test_settings_registry import _check_fails_with

GOOD = {"backend": "nats", "servers": ["nats://127.0.0.1:4222"]}


@pytest.mark.parametrize(("value", "check_id", "subject"), [
    ("nats://127.0.0.1:4222", "rail_django.E100", "AUDIT_STREAM is"),
    ({**GOOD, "backend": "kafka"}, "rail_django.E100", "AUDIT_STREAM['backend']"),
    ({**GOOD, "servers": []}, "rail_django.E101", "AUDIT_STREAM['servers']"),
    ({**GOOD, "servers": ["http://127.0.0.1:4222"]}, "rail_django.E101", "AUDIT_STREAM['servers']"),
    ({**GOOD, "stream": "AU.DIT"}, "rail_django.E102", "AUDIT_STREAM['stream']"),
    ({**GOOD, "subject": "audit.*"}, "rail_django.E102", "AUDIT_STREAM['subject']"),
    ({**GOOD, "durable": "in gest"}, "rail_django.E102", "AUDIT_STREAM['durable']"),
    ({**GOOD, "replicas": 7}, "rail_django.E103", "AUDIT_STREAM['replicas']"),
    ({**GOOD, "duplicate_window": 0}, "rail_django.E104", "AUDIT_STREAM['duplicate_window']"),
    ({**GOOD, "publish_timeout": "5s"}, "rail_django.E104", "AUDIT_STREAM['publish_timeout']"),
    ({**GOOD, "batch": 0}, "rail_django.E105", "AUDIT_STREAM['batch']"),
    ({**GOOD, "replica": 3}, "rail_django.E106", "unknown key(s) replica"),
])
@pytest.mark.django_db
def test_a_bad_stream_setting_fails_check_with_its_id(value, check_id, subject):
    report = _check_fails_with("AUDIT_STREAM", value)
    assert check_id in report and subject in report, report


def test_a_valid_stream_setting_replaces_the_database_sink(settings):
    settings.AUDIT_STREAM = {**GOOD, "replicas": 3}
    config = get_config()
    assert config.stream == StreamConfig(
        backend="nats", servers=("nats://127.0.0.1:4222",), stream="AUDIT", subject="audit.events", replicas=3,
        duplicate_window=120.0, durable="rail-django-ingest", batch=1000, connect_timeout=2.0, publish_timeout=5.0,
    )
    kinds = [type(s) for s in build_sinks(config)]
    assert StreamSink in kinds and DatabaseSink not in kinds
    settings.AUDIT_STREAM = None
    assert DatabaseSink in [type(s) for s in build_sinks(get_config())]


def test_nats_is_not_imported_without_audit_stream():
    """The client is imported lazily: a project without AUDIT_STREAM never loads nats-py."""
    import subprocess
    import sys

    from tests.stream.conftest import ROOT

    code = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'; import django; "
        "from django.conf import settings; settings.AUDIT_STORE_IN_DATABASE = False; django.setup(); "
        "from rail_django.security import EventType, security; security.emit(EventType.DATA_READ); "
        "security.flush(); print('nats' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr[-2000:]


def test_ingest_writes_through_a_database_sink_that_premakes_partitions(settings, monkeypatch):
    """With AUDIT_PARTITIONING, ingest's database sink premakes partitions like the in-process writer's."""
    from django.db import connection

    from rail_django.operations import ingest

    if connection.vendor != "postgresql":  # elsewhere the setting is refused (E092) and reads as off
        pytest.skip("PostgreSQL feature: runs in the PostgreSQL pass")

    settings.AUDIT_STREAM = GOOD
    settings.AUDIT_PARTITIONING = {"interval": "day", "premake": 2}
    monkeypatch.setattr(ingest.Ingest, "run", lambda self: self.sink)
    sink = ingest.run_ingest()
    assert isinstance(sink, DatabaseSink)
    assert (sink.partitioning.interval, sink.partitioning.premake) == ("day", 2)
