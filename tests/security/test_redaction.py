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


@pytest.mark.parametrize(
    "key",
    ["creditCard", "CREDITCARD", "credit-card", "Credit.Card", "cardNumber", "card_number", "passwd", "pwd",
     "mysql_pwd", "passphrase", "passcode", "cvc", "card_cvc2", "apikey", "APIKey", "x-api-key", "refreshToken",
     "pass", "PASS", "user_pass", "passPhrase", "pin", "PIN", "user_pin", "pinCode", "userPIN", "card.pin", "pin2",
     "otp", "OTPCode", "otp_code", "mfaOtp"],
)
def test_default_words_match_any_case_and_separator_spelling(key):
    assert redact({key: "s3cr3t-value"}) == {key: MASK}
    assert redact(f"{key}=s3cr3t-value and more") == f"{key}={MASK} and more"


@pytest.mark.parametrize(
    "key",
    ["shipping", "shipping_address", "spinner", "opinion", "pinterest_url", "passenger", "passengerName",
     "compass", "bypass", "passive", "footprint", "hotpink", "potpie", "username", "email", "status"],
)
def test_short_words_do_not_mask_longer_words_that_contain_them(key):
    assert redact({key: "kept"}) == {key: "kept"}
    assert redact(f"{key}=kept here") == f"{key}=kept here"


def test_every_key_the_contract_matches_as_a_substring_is_still_matched():
    """AUDIT_REDACTION_FIELDS: "keys matched case-insensitively as substrings" -- ignoring separators adds matches only."""
    contract = ["password", "token", "secret", "key", "credential", "authorization", "cookie", "session", "ssn",
                "credit_card", "cvv"]
    for word in contract:
        for key in (word, word.upper(), f"x_{word}_y", f"my{word.title()}2", f"{word}{word}", f"--{word}--"):
            assert word in key.lower()
            assert redact({key: "v"}) == {key: MASK}, key


def test_whole_segment_words_are_configurable_with_a_marker():
    redactor = Redactor(["=pin", "=card_no"], MASK)
    assert redactor.clean({"pin": 1, "pinCode": 2, "shipping": 3, "CardNo": 4, "card_number": 5, "xcardno": 6}) == {
        "pin": MASK, "pinCode": MASK, "shipping": 3, "CardNo": MASK, "card_number": 5, "xcardno": 6,
    }
    # a word of separators alone is compared as written
    assert Redactor(["__"], MASK).clean({"a__b": 1, "a_b": 2}) == {"a__b": MASK, "a_b": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connect to postgres://app:PASS@db/prod failed", f"connect to postgres://app:{MASK}@db/prod failed"),
        ("DATABASE_URL: postgresql+psycopg://app:p%40ss@db:5432/x", f"DATABASE_URL: postgresql+psycopg://app:{MASK}@db:5432/x"),
        ("redis://:s3cret@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ('{"dsn": "amqp://guest:guest@mq//"}', f'{{"dsn": "amqp://guest:{MASK}@mq//"}}'),
        ("https://example.com/a:b@c", "https://example.com/a:b@c"),  # a path, not userinfo
        ("ssh://git@github.com/x.git", "ssh://git@github.com/x.git"),  # no password
        ("mailto:alice@example.com", "mailto:alice@example.com"),
    ],
)
def test_the_password_of_a_url_in_text_is_masked(text, expected):
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
    [
        "x" * 4096, "password" * 512, "a=" * 2048, "eyJ" * 1365, "Bearer " + "1" * 4000, "-." * 2048, "key:" * 1000,
        "a://" * 1000, "a://u:" * 680, "a" * 4000 + "://", "a://" + "u" * 4000 + ":" + "p" * 4000, "a_" * 2048,
        "pinPin" * 680, "A" * 4090 + "pin=",
    ],
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


def test_a_huge_key_is_judged_whole_and_in_linear_time():
    import time

    started = time.perf_counter()
    cleaned = redact({"Ab" * 200_000 + "_pin": "1234", "x" * 400_000 + "shipping": "kept"})
    assert time.perf_counter() - started < 5  # a hang guard, not a measurement
    assert list(cleaned.values()) == [MASK, "kept"]


def test_keys_seen_before_are_judged_the_same_way_again():
    # Keys are remembered per redactor: the second event with the same keys must be masked alike,
    # keys that are not plain str (ints, str subclasses) and keys that hold secret text included.
    class Name(str):
        pass

    redactor = Redactor(["password"], MASK)
    for _ in range(3):
        assert redactor.clean({"password": "a", "note": "b", 7: "c", Name("Password2"): "d", "k=token:x": 1}) == {
            "password": MASK, "note": "b", "7": "c", "Password2": MASK, "k=token:x": 1,
        }
    assert Redactor(["note"], MASK).clean({"password": "a", "note": "b"}) == {"password": "a", "note": MASK}


def test_a_mapping_key_is_judged_once_per_redactor(monkeypatch):
    # The verdict on a key is kept: the second event with the same keys neither scrubs them nor
    # asks the key matcher again.
    redactor = Redactor(["password"], MASK)
    value = {"password": "a", "note": "b"}
    redactor.clean(value)
    calls = []
    monkeypatch.setattr(redactor, "is_sensitive_key", lambda key: calls.append(key) or False)
    monkeypatch.setattr(redactor, "scrub_text", lambda text: calls.append(text) or text)
    assert redactor.clean(value) == {"password": MASK, "note": "b"}
    assert calls == ["b"]  # only the value was scrubbed


@pytest.mark.parametrize("text", ["2026-12-03T16:00:00.123456+00:00", "Order #3: paid", "a=1&b=2", "ratio: 1.5"])
def test_text_with_no_configured_word_skips_the_scan(text):
    from rail_django.events.redaction import _may_hold_secret

    redactor = Redactor(["password", "=pin"], MASK)
    assert not _may_hold_secret(text, redactor._matches_key)
    assert redactor.scrub_text(text) == text


@pytest.mark.parametrize("text, expected", [
    ("user_pin: 1234", f"user_pin: {MASK}"),
    ("x=1 PassWord = hunter2", f"x=1 PassWord = {MASK}"),
    ("see https://u:hunter2@example.com", f"see https://u:{MASK}@example.com"),
    ("Authorization Bearer abcdef123456", f"Authorization Bearer {MASK}"),
])
def test_text_with_a_configured_word_is_still_scanned(text, expected):
    assert Redactor(["password", "=pin"], MASK).scrub_text(text) == expected
