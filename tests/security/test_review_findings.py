"""Findings of the outside security review (issue 12), each reproduced through the public paths.

Item 5: secrets spelled another way reached the row and the file. Item 6: stored text reached the
operator's terminal raw. (Item 10, the admin's lookups, is in tests/admin/test_admin.py; the
username spellings of the lockout in tests/security/test_alerts.py; the security_check items in
tests/commands/test_security_check.py.)
"""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.cache import cache
from django.core.management import call_command

from rail_django.alerts import failed_logins as alerts
from rail_django.operations.common import printable
from rail_django.security import EventType, security

pytestmark = pytest.mark.django_db(transaction=True)

MASK = "***REDACTED***"

# -- item 5: redaction of other spellings -----------------------------------------------------

SPELLINGS = {
    "creditCard": "4111111111111111",
    "cardNumber": "5500005555555559",
    "passwd": "pw-passwd-Zq81",
    "pwd": "pw-pwd-Zq82",
    "pass": "pw-pass-Zq83",
    "passphrase": "correct horse battery staple Zq84",
    "pin": "4921",
    "otp": "739104",
    "cvc": "914",
    "CREDIT-CARD": "4000056655665556",
    "userPin": "5813",
}


def test_secrets_under_other_spellings_never_reach_the_row_or_the_file(audit_model, audit_log_file):
    event = security.emit(
        EventType.UI_ACTION,
        context={**SPELLINGS, "nested": [{"OTPCode": "602214"}], "shipping": "express", "passenger": "Ada"},
        error="connect to postgres://app:Pg-Secret-Zq85@db/prod failed; retry with pwd=Pwd-Zq86",
    )
    assert security.flush(timeout=30)
    row = audit_model.objects.get(event_id=event.event_id)
    stored = json.dumps(row.additional_data) + row.error_message + audit_log_file.read_text()
    for secret in [*SPELLINGS.values(), "602214", "Pg-Secret-Zq85", "Pwd-Zq86"]:
        assert secret not in stored, secret
    context = row.additional_data["context"]
    assert {key: context[key] for key in SPELLINGS} == dict.fromkeys(SPELLINGS, MASK)
    assert context["shipping"] == "express" and context["passenger"] == "Ada"  # ordinary data is kept
    assert row.error_message == f"connect to postgres://app:{MASK}@db/prod failed; retry with pwd={MASK}"


# -- item 6: terminal and report injection ----------------------------------------------------

CLEAR_SCREEN = "\x1b[2J\x1b[H"
HOSTILE_USERNAMES = [
    CLEAR_SCREEN + "All clear: 0 failed logins",
    "mallory\n\nAlerts raised: 0\nAll clear",
    "eve\r" + "All clear" + " " * 20,
    "c1\x9b2Jcsi",  # C1 control sequence introducer
    "sep\u2028All clear\u2029",
    "bidi\u202eraelc llA",
    "bell\x07del\x7fnel\x85",
]
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def hostile_failed_logins(client, audit_model, settings):
    """Anonymous failed logins through the real login view, each with a hostile username."""
    settings.AUDIT_ATTEMPTED_USERNAME = "always"  # stored as typed: the attack reaches the report
    cache.clear()  # no failed-login count left over from another test: no alert among these events
    alerts.counter.reset()
    for name in HOSTILE_USERNAMES:
        response = client.post("/login/", {"username": name, "password": "wrong-password"}, REMOTE_ADDR="203.0.113.7")
        assert response.status_code == 200
    assert security.flush(timeout=30)
    failures = audit_model.objects.filter(event_type="auth.login.failure")
    stored = set(failures.values_list("additional_data__context__username_attempted", flat=True))
    assert {name.strip() for name in HOSTILE_USERNAMES} <= stored  # the form strips surrounding spaces
    return sorted(stored)


def test_summary_text_shows_hostile_usernames_escaped_one_line_each(hostile_failed_logins):
    out = io.StringIO()
    call_command("audit_management", "summary", stdout=out)
    text = out.getvalue()
    assert not CONTROL.search(text), repr(CONTROL.search(text))
    assert not any(line.strip().startswith("All clear") for line in text.splitlines())
    assert [line for line in text.splitlines() if line.startswith("Alerts raised")] == ["Alerts raised: 0"]
    section = text.split("Top targeted usernames:\n")[1].split("\n\n")[0].splitlines()
    assert len(section) == len(hostile_failed_logins)  # one line per username: no forged lines
    for name in hostile_failed_logins:
        assert any(line.strip().startswith(printable(name).strip()) for line in section), name
    assert "\\x1b[2J\\x1b[HAll clear: 0 failed logins" in text
    assert "mallory\\n\\nAlerts raised: 0\\nAll clear" in text


def test_summary_json_stays_structured(hostile_failed_logins):
    out = io.StringIO()
    call_command("audit_management", "summary", "--format", "json", stdout=out)
    report = json.loads(out.getvalue())
    assert {row["username"] for row in report["top_targeted_usernames"]} == set(hostile_failed_logins)
    assert not CONTROL.search(out.getvalue())  # JSON escapes them itself


def test_export_messages_escape_the_output_name(tmp_path, audit_model):
    target = tmp_path / "audit\x1b[2J\nAll clear.json"
    out = io.StringIO()
    call_command("audit_management", "export", "--format", "json", "--output", str(target), stdout=out)
    assert target.exists()
    [line] = out.getvalue().splitlines()
    assert line.endswith("audit\\x1b[2J\\nAll clear.json") and not CONTROL.search(line)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x00\x1f\x7f", "\\x00\\x1f\\x7f"),
        ("\x80\x85\x9b\x9f", "\\x80\\x85\\x9b\\x9f"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("\u202e\u2066\u200f", "\\u202e\\u2066\\u200f"),
        ("héllo wörld 日本 🙂 C:\\path", "héllo wörld 日本 🙂 C:\\path"),  # printable text is left alone
        (42, "42"),
    ],
)
def test_printable_escapes_every_control_character_and_nothing_else(raw, shown):
    assert printable(raw) == shown


def test_printable_leaves_no_character_that_starts_a_line_or_a_sequence():
    every = "".join(chr(code) for code in range(0x3000)) + "\u2066\u2067\u2068\u2069"
    escaped = printable(every)
    assert not CONTROL.search(escaped)
    assert len(escaped.splitlines()) == 1  # str.splitlines knows every line boundary Python does
