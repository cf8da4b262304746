"""JSON-lines file sink: whole lines from several processes, rotation, no forged lines."""

import json
import multiprocessing
import os

import pytest

from rail_django.security import EventType, security
from rail_django.sinks import FileSink

pytestmark = pytest.mark.sqlite_only  # no database involved


def _writer_process(path: str, worker: int, batches: int) -> None:
    sink = FileSink(path)
    for batch in range(batches):
        events = [
            security.build(EventType.UI_ACTION, context={"worker": worker, "batch": batch, "i": i, "pad": "x" * 3000})
            for i in range(5)
        ]
        sink.write(events)
    sink.close()


def test_several_processes_write_whole_parseable_lines(tmp_path):
    path = tmp_path / "audit.log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer_process, args=(str(path), w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 4 * 40 * 5
    seen = {(d["context"]["worker"], d["context"]["batch"], d["context"]["i"]) for d in map(json.loads, lines)}
    assert len(seen) == 800


def test_size_rotation_keeps_backups_and_whole_lines(tmp_path):
    path = tmp_path / "audit.log"
    sink = FileSink(path, max_bytes=4_000, backup_count=2)
    for n in range(40):
        sink.write([security.build(EventType.DATA_READ, context={"n": n, "pad": "y" * 300})])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    for name in files:
        for line in (tmp_path / name).read_text().splitlines():
            json.loads(line)
    assert os.path.getsize(path) <= 4_000


def test_logrotate_style_move_is_followed(tmp_path):
    path = tmp_path / "audit.log"
    sink = FileSink(path)
    sink.write([security.build(EventType.DATA_READ, action="before")])
    os.rename(path, tmp_path / "audit.log.1")  # what logrotate's `create` mode does
    sink.write([security.build(EventType.DATA_READ, action="after")])
    assert json.loads((tmp_path / "audit.log.1").read_text())["action"] == "before"
    assert json.loads(path.read_text())["action"] == "after"


def test_newlines_and_control_characters_cannot_forge_a_line(tmp_path):
    path = tmp_path / "audit.log"
    forged = 'x"}\n{"event_type":"auth.login.success","username":"admin"}\r\n\x1b[2J'
    FileSink(path).write([security.build(EventType.UI_ACTION, action=forged, context={"k": forged})])
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["action"] == forged


@pytest.mark.parametrize("character", ["\x80", "\x85", "\x9b", "\x9f"], ids=["PAD", "NEL", "CSI", "APC"])
def test_c1_control_characters_are_escaped_in_the_file(tmp_path, character):
    """U+0080-U+009F: JSON encoders leave them raw; a terminal reads U+009B as the start of an escape sequence."""
    path = tmp_path / "audit.log"
    hostile = f"{character}[2J{character}]0;owned\x07 zoë"
    FileSink(path).write([security.build(EventType.UI_ACTION, action=hostile, context={hostile: hostile})])
    written = path.read_bytes()
    assert character.encode() not in written
    assert f"\\u{ord(character):04x}".encode() in written
    assert "zoë".encode() in written  # other non-ASCII text stays as it is
    record = json.loads(written)
    assert record["action"] == hostile and record["context"] == {hostile: hostile}


@pytest.mark.django_db(transaction=True)
def test_the_journal_and_the_file_get_the_same_line(settings, tmp_path):
    from rail_django.sinks.base import event_line

    settings.SECURITY_EVENT_ASYNC = True  # journal on the request thread, file line in the writer
    settings.AUDIT_LOG_FILE = tmp_path / "audit.log"
    event = security.emit(EventType.DATA_READ, action="Zoë \x9b")
    assert security.flush(timeout=30)
    assert (tmp_path / "audit.log").read_bytes() == event_line(event)
    assert event_line(event) is event_line(event)  # encoded once, kept on the event


@pytest.mark.parametrize(
    "context",
    [
        {"plain": "ascii only", "n": 3, "ratio": 0.1, "nested": {"list": [1, 2.5, None, True]}},
        {"text": "Zoë 北京 \u2028 line \u2029 para \x85 nel \U0001F600", "tab": "a\tb"},
        {"huge": 10**30},  # beyond 64 bits: orjson refuses it, the json module writes it
    ],
    ids=["ascii", "unicode-and-line-breaks", "huge-integer"],
)
def test_the_line_is_the_json_of_to_dict_on_one_line(context):
    from rail_django.sinks.base import event_json, event_line

    event = security.build(EventType.DATA_READ, action="read", context=context, risk_score=0.7, resource_id=42)
    line = event_line(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert b"\xe2\x80\xa8" not in line and b"\xe2\x80\xa9" not in line and b"\xc2\x85" not in line
    assert json.loads(line) == json.loads(json.dumps(event.to_dict())) == json.loads(event_json(event))
    assert event_json(event) == line[:-1].decode()
