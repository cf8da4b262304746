"""Secrets never reach a sink: keys at any depth, secret values inside text."""

import json

import pytest
from django.test import override_settings

from rail_django.events.redaction import MAX_STRING_LENGTH, Redactor, redact
from rail_django.security import EventType, security

MASK = "***REDACTED***"


def test_nested_keys_in_dicts_lists_and_tuples_are_masked():
    value = {
        "user": "bob",
        "Password": "p1",
        "profile": {"api_key": "k", "address": {"street": "x", "SSN": "123-45-6789"}},
        "items": [{"credit_card": "4111"}, ("plain", {"cvv": "123"})],
        "Authorization": "Bearer abc.def",
        "sessionid": "s",
        "x-csrf-cookie": "c",
    }
    cleaned = redact(value)
    assert cleaned["user"] == "bob"
    assert cleaned["Password"] == MASK
    assert cleaned["profile"]["api_key"] == MASK
    assert cleaned["profile"]["address"] == {"street": "x", "SSN": MASK}
    assert cleaned["items"][0] == {"credit_card": MASK}
    assert cleaned["items"][1] == ["plain", {"cvv": MASK}]
    assert cleaned["Authorization"] == MASK
    assert cleaned["sessionid"] == MASK and cleaned["x-csrf-cookie"] == MASK


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login failed: password=hunter2 for bob", f"login failed: password={MASK} for bob"),
        ("upstream said token: abc123def", f"upstream said token: {MASK}"),
        ('{"client_secret": "s3cr3t", "user": "bob"}', f'{{"client_secret": {MASK}, "user": "bob"}}'),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", f"Authorization: {MASK}"),
        ("retry with Bearer abc123def456", f"retry with Bearer {MASK}"),
        ("basic authentication is disabled", "basic authentication is disabled"),
        ("Invalid credentials", "Invalid credentials"),
        ("the token endpoint timed out", "the token endpoint timed out"),
        ("url?api_key=XYZ&page=2", f"url?api_key={MASK}&page=2"),
    ],
)
def test_secret_values_inside_text_are_masked_and_the_rest_kept(text, expected):
    assert redact(text) == expected


def test_custom_fields_and_mask():
    redactor = Redactor(["pin"], "[gone]")
    assert redactor.clean({"PIN_code": "1234", "password": "kept-because-not-configured"}) == {
        "PIN_code": "[gone]", "password": "kept-because-not-configured",
    }
    assert redactor.scrub_text("pin=9999 ok") == "pin=[gone] ok"


def test_long_and_deep_values_are_bounded():
    deep: dict = {}
    node = deep
    for _ in range(50):
        node["n"] = {}
        node = node["n"]
    cleaned = redact({"big": "x" * (MAX_STRING_LENGTH * 3), "deep": deep, "many": list(range(1000))})
    assert len(cleaned["big"]) < MAX_STRING_LENGTH + 20
    assert "too deep" in json.dumps(cleaned["deep"])
    assert len(cleaned["many"]) == 201


@pytest.mark.django_db(transaction=True)
@override_settings(AUDIT_REDACTION_FIELDS=["pin"], AUDIT_REDACTION_MASK="[gone]")
def test_configured_fields_apply_to_stored_events(audit_model, audit_log_file):
    security.emit(EventType.UI_ACTION, context={"card_pin": "4321", "note": "pin: 4321"}, error="bad pin=4321")
    row = audit_model.objects.get()
    assert row.additional_data["context"] == {"card_pin": "[gone]", "note": "pin: [gone]"}
    assert row.error_message == "bad pin=[gone]"
    assert "4321" not in audit_log_file.read_text()


@pytest.mark.django_db(transaction=True)
def test_emit_redacts_context_error_and_file_line(client, audit_model, audit_log_file):
    client.get("/emit/")  # the view puts api_key and a nested password in context
    row = audit_model.objects.get()
    assert row.additional_data["context"]["api_key"] == MASK
    assert row.additional_data["context"]["nested"] == [{"password": MASK}]
    text = audit_log_file.read_text()
    assert "sk_live_abc" not in text and "hunter2" not in text


@pytest.mark.parametrize(
    "hostile",
    ["x" * 4096, "password" * 512, "a=" * 2048, "eyJ" * 1365, "Bearer " + "1" * 4000, "-." * 2048, "key:" * 1000],
)
def test_scrubbing_hostile_text_stays_linear(hostile):
    # A catastrophic-backtracking pattern would hang here for minutes; the
    # bound is a hang guard, not a performance measurement.
    import threading

    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("out", redact({"note": hostile, "e": hostile})))
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "redaction did not finish: the text pattern backtracks"
    assert "out" in result


def test_a_secret_key_inside_another_value_is_still_found():
    assert redact("a=password=hunter2") == f"a=password={MASK}"
