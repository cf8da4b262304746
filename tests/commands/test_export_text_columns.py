"""``export`` reads timestamps, UUIDs, booleans and JSON as their stored text: the edge cases of that
reading and of the JSON object writer, each against the reference of ``test_export_reference``."""

from __future__ import annotations

import json
import random
import re
import sys
import uuid
from datetime import timedelta

import orjson
import pytest
from django.db import connection
from django.utils import timezone

from rail_django.operations.export.formats import json_text
from rail_django.operations.export.query import JSONText, is_canonical_json, utc_timestamp_text, uuid_text
from tests.commands.test_export_reference import export_text, reference

pytestmark = pytest.mark.django_db(transaction=True)

VENDOR = connection.vendor


def _rows(model, stamps, **fields):
    return [model(event_id=uuid.uuid4(), event_type="x.y", timestamp=stamp, additional_data={"n": n}, **fields)
            for n, stamp in enumerate(stamps)]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_fractions_with_trailing_zeros_and_without_a_fraction(audit_model, fmt):
    # PostgreSQL's text drops a fraction's trailing zeros (".12"), MySQL's keeps six digits (".000000").
    base = timezone.now().replace(microsecond=0) - timedelta(days=1)
    stamps = [base + timedelta(seconds=n, microseconds=us)
              for n, us in enumerate([0, 100000, 120000, 500, 10, 999990, 1, 0])]
    audit_model.objects.bulk_create(_rows(audit_model, stamps, success=False))
    expected = reference(audit_model, fmt)
    assert ".100000+00:00" in expected and ".000500+00:00" in expected
    assert re.search(r"T[0-9]{2}:[0-9]{2}:[0-9]{2}\+00:00", expected)  # no fraction at all
    assert export_text("--format", fmt) == expected


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_json_values_of_every_kind_and_nesting(audit_model, fmt):
    values = [
        {}, [], {"a": {"b": {"c": [1, 2.5, None, True, False, "zoë 😀", {"d": []}]}}}, [[[]]], "top-level text",
        0, -7, 12.5, 1e-07, 1e16, 0.1, 2**63 - 1, 2**64 + 1, True, False, {"x": "a\nb\t\"q\"\\ \x01 \x7f"},
        {"k": "ends: with, separators"}, {"é": 1, "e": 2}, [1e300, -0.0, 100.0],
    ]
    base = timezone.now() - timedelta(days=1)
    rows = _rows(audit_model, [base + timedelta(seconds=n) for n in range(len(values))])
    for row, value in zip(rows, values, strict=True):
        row.additional_data = value
    audit_model.objects.bulk_create(rows)
    assert export_text("--format", fmt) == reference(audit_model, fmt)


@pytest.mark.skipif(VENDOR == "postgresql", reason="PostgreSQL's boolean holds true/false only")
def test_a_stored_boolean_other_than_0_or_1_is_read_as_django_reads_it(audit_model, insert):
    insert(3)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {audit_model._meta.db_table} SET success = 2")
    expected = reference(audit_model, "jsonl")
    # SQLite's driver converter (b"1".__eq__) makes it False; MySQL's converter leaves the number.
    assert ('"success": false' if VENDOR == "sqlite" else '"success": 2') in expected
    assert export_text("--format", "jsonl") == expected


def test_a_session_time_zone_other_than_utc_gives_djangos_timestamps(audit_model, insert):
    if VENDOR != "postgresql":
        pytest.skip("PostgreSQL session settings")
    insert(5)
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Kolkata'")
    try:
        expected = reference(audit_model, "jsonl")
        # Django reads timestamps in UTC whatever the session's zone; the session's text would say +05:30.
        assert "+05:30" not in expected and "+00:00" in expected
        assert export_text("--format", "jsonl") == expected
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")


# -- the pieces, on every database (no rows needed) -------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-03 10:00:00", "2026-12-03T10:00:00+00:00"),
    ("2026-12-03 10:00:00.000000", "2026-12-03T10:00:00+00:00"),
    ("2026-12-03 10:00:00.12+00", "2026-12-03T10:00:00.120000+00:00"),
    ("2026-12-03 10:00:00.000001", "2026-12-03T10:00:00.000001+00:00"),
    ("2026-12-03T10:00:00.5", "2026-12-03T10:00:00.500000+00:00"),
    ("2026-12-03 10:00:00+02:00", "2026-12-03T10:00:00+02:00"),
    ("2026-12-03 10:00:00.25Z", "2026-12-03T10:00:00.250000+00:00"),
])
def test_utc_timestamp_text_is_isoformat_of_djangos_value(text, expected):
    assert utc_timestamp_text(text) == expected


def test_uuid_text_is_the_text_of_djangos_uuid():
    value = uuid.uuid4()
    assert uuid_text(value.hex) == str(value)
    assert uuid_text(value.hex.upper()) == str(value)
    assert uuid_text(str(value)) == str(value)
    with pytest.raises(ValueError):
        uuid_text("z" * 32)


@pytest.mark.sqlite_only
def test_orjson_writes_every_code_point_as_the_json_module():
    # object_encoder relies on it for text columns; lone surrogates are refused (the json module writes them).
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code < 0xE000:
            continue
        text = "a" + chr(code) + "b"
        assert orjson.dumps(text).decode() == json_text(text), hex(code)
    for value in [0, -1, 2**63 - 1, 2**64 - 1, -(2**63), True, False, None]:
        assert orjson.dumps(value).decode() == json_text(value)
    for refused in ["\ud800", 2**64]:
        with pytest.raises(TypeError):
            orjson.dumps(refused)


def _random_json(rng: random.Random, depth: int = 0):
    pick = rng.randrange(9 if depth < 4 else 5)
    if pick == 0:
        alphabet = [chr(rng.randrange(0, 0x80)), chr(rng.randrange(0x80, 0x3000)), chr(rng.randrange(0x10000, 0x10400)),
                    '"', "\\", "\u2028", "/", " ", ":", ",", ": ", '": ']
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
    if pick == 1:
        exponent = rng.randrange(-30, 30)
        return rng.choice([0.1, 1e-7, 1e16, -0.0, 2.5, 1e300, float("inf"), float("nan"), 123456789012345.6,
                           round(rng.random() * 10**exponent, rng.randrange(0, 20)), rng.random() * 10**exponent])
    if pick == 2:
        return rng.choice([0, -1, 10**17, 10**18, 10**19, -(10**30), rng.randrange(-10**9, 10**9)])
    if pick == 3:
        return rng.choice([True, False, None])
    if pick == 4:
        return "x"
    if pick in (5, 6):
        return {str(_random_json(rng, 4)): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]


def _mutations(text: str, rng: random.Random) -> list[str]:
    """Texts that mean the same JSON (or almost) but are not written as json.dumps writes them."""
    out = [text.replace(", ", ","), text.replace(": ", ":"), " " + text, text + "\n", text.replace("[", "[ "),
           text[:-1], text + "]", "[" + text]
    position = rng.randrange(len(text) + 1)
    out.append(text[:position] + " " + text[position:])
    for old, new in [("0", "00"), (".5", ".50"), ("e-07", "E-7"), ("e-07", "e-7"), ("e+16", "e16"), ("1.0", "1.00"),
                     ("é", "\\u00e9"), ("/", "\\/"), ("\\u001f", "\\u001F"), ("\\n", "\\u000a"), ("x", "\\u0078"),
                     ("1", "-0"), ("true", "True"), ('"', "'")]:
        if old in text:
            out.append(text.replace(old, new, 1))
    return out


@pytest.mark.sqlite_only
def test_stored_json_text_is_copied_only_when_it_is_what_json_dumps_gives_back():
    rng = random.Random(2024)
    copied = 0
    for _ in range(4000):
        value = _random_json(rng)
        for text in (json.dumps(value, ensure_ascii=False), json.dumps(value)):
            for candidate in [text, *_mutations(text, rng)]:
                if is_canonical_json(candidate):
                    copied += 1
                    assert json.dumps(json.loads(candidate), ensure_ascii=False) == candidate, candidate
                    assert JSONText(candidate).value() == json.loads(candidate)
    assert copied > 3000  # json.dumps's own output is mostly copied


@pytest.mark.sqlite_only
@pytest.mark.parametrize("text", ['{"a": 1, "a": 2}', '{"k": {"x": 1, "x": 2}}', '{"": 1, "": 2}', '{"a": NaN}',
                                  '{"a": 1', '["a": 1]', '{"f": 1e-7}', '{"big": 1234567890123456789}'])
def test_other_stored_json_is_decoded_and_written_again(text):
    assert not is_canonical_json(text)
