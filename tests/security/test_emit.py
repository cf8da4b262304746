"""security.emit: the documented snippets, robustness, the master switch, transactions, append-only rows."""

import json
import os

import pytest
from django.db import transaction
from django.test import override_settings

from rail_django.models import AppendOnlyError, allow_retention_delete, get_audit_event_model
from rail_django.security import EventType, Outcome, Severity, security

pytestmark = pytest.mark.django_db(transaction=True)


def test_documented_emit_snippet_works_verbatim(rf, audit_model):
    request = rf.post("/login/", HTTP_USER_AGENT="DocBrowser/1", REMOTE_ADDR="192.0.2.33")
    username = "mallory"
    # --- from audit-logging.md ---
    security.emit(
        EventType.AUTH_LOGIN_FAILURE,
        request=request,
        outcome=Outcome.FAILURE,
        severity=Severity.WARNING,
        action="Login attempt failed",
        context={"username_attempted": username},
        error="Invalid credentials",
    )
    # ---
    row = audit_model.objects.get()
    assert row.event_type == "auth.login.failure"
    assert row.severity == "warning" and row.success is False
    assert row.error_message == "Invalid credentials"
    assert row.client_ip == "192.0.2.33" and row.user_agent == "DocBrowser/1"
    assert row.additional_data["action"] == "Login attempt failed"
    assert row.additional_data["context"] == {"username_attempted": "mallory"}


def test_documented_orm_query_snippet_works_verbatim(audit_model):
    security.emit(EventType.AUTH_LOGIN_FAILURE, outcome=Outcome.FAILURE)
    security.emit(EventType.AUTH_LOGIN_SUCCESS)
    # --- from audit-logging.md ---
    AuditEvent = get_audit_event_model()
    recent = AuditEvent.objects.filter(success=False).order_by("-timestamp")[:50]
    # ---
    assert [r.event_type for r in recent] == ["auth.login.failure"]


def test_event_ids_are_unique_time_ordered_version_7_uuids():
    import time

    from rail_django.events.types import _uuid7

    ids = []
    for _ in range(3):
        ids += [security.build(EventType.DATA_READ).event_id for _ in range(200)]
        time.sleep(0.002)  # the next millisecond
    assert len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {7} and {i.variant for i in ids} == {"specified in RFC 4122"}
    prefixes = [i.int >> 80 for i in ids]  # the 48-bit millisecond timestamp
    assert prefixes == sorted(prefixes) and prefixes[-1] > prefixes[0]
    assert abs(prefixes[-1] - time.time() * 1000) < 60_000
    # the fallback used before Python 3.14 has the same layout
    own = [_uuid7() for _ in range(100)]
    assert {i.version for i in own} == {7} and {i.variant for i in own} == {"specified in RFC 4122"}
    assert len(set(own)) == 100


def test_event_ids_never_share_random_bits_across_threads_or_a_fork():
    """The fallback's random bytes come from a pool: each 10 bytes handed out once, and a forked child
    draws fresh ones (else parent and child would make the same ids in the same millisecond)."""
    import threading

    from rail_django.events.types import _random_pool, _uuid7

    _random_pool.take10()  # the pool holds bytes the child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next random bits, to the parent
        try:
            os.write(write, b"".join(_random_pool.take10() for _ in range(50)))
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 1000)
    os.close(read)
    ours = b"".join(_random_pool.take10() for _ in range(50))
    assert len(child) == 500 and child != ours
    assert not {child[i:i + 10] for i in range(0, 500, 10)} & {ours[i:i + 10] for i in range(0, 500, 10)}

    ids: list = []
    threads = [threading.Thread(target=lambda: ids.extend(_uuid7() for _ in range(2_000))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == len(ids) == 8_000
    assert len({i.int & ((1 << 62) - 1) for i in ids}) == 8_000  # the random tails differ too


def test_emit_returns_the_event_with_its_id_and_every_field(audit_model, user):
    event = security.emit(
        EventType.DATA_UPDATE, user=user, action="Renamed", resource_type="order", resource_name="Order",
        resource_id=12, risk_score="0.7", outcome=Outcome.DENIED,
    )
    row = audit_model.objects.get(event_id=event.event_id)
    assert row.success is False  # only Outcome.SUCCESS is success
    assert row.additional_data["outcome"] == "denied"
    assert row.additional_data["resource"] == {"type": "order", "name": "Order", "id": "12"}
    assert row.additional_data["risk_score"] == 0.7
    assert row.user_id == str(user.pk) and row.username == "alice"
    assert row.severity == "info"  # EventType.DATA_UPDATE's default


def test_every_contract_event_type_exists_with_its_value():
    values = {
        "auth.login.success", "auth.login.failure", "auth.logout", "auth.token.issued", "auth.token.refreshed",
        "auth.token.revoked", "auth.token.invalid", "auth.mfa.success", "auth.mfa.failure",
        "authz.permission.granted", "authz.permission.denied", "authz.role.assigned", "authz.role.revoked",
        "data.read", "data.create", "data.update", "data.delete", "data.bulk", "data.sensitive.access",
        "data.export", "query.blocked.depth", "query.blocked.complexity", "query.blocked.introspection",
        "query.validation.failed", "query.injection.attempt", "rate.limit.exceeded", "rate.limit.warning",
        "system.error", "system.config.change", "ui.action", "security.alert",
        "system.integrity.checkpoint",  # part 2
    }
    assert values <= {e.value for e in EventType}  # part 2 adds more (tests/events/)
    assert EventType.DATA_BULK_OPERATION.value == "data.bulk"
    assert EventType.SECURITY_ALERT.default_severity is Severity.CRITICAL
    assert [s.value for s in Severity] == ["debug", "info", "warning", "error", "critical"]
    assert [o.value for o in Outcome] == ["success", "failure", "denied", "blocked", "error"]


class _Unserialisable:
    def __str__(self):
        return "custom-object"


class _Hostile:
    def __str__(self):
        raise RuntimeError("no")


class _UserWithoutUsername:
    pk = "b3c1f2a4-uuid-like"
    is_authenticated = True


def test_emit_never_raises_on_odd_values_or_users(audit_model):
    event = security.emit(
        EventType.UI_ACTION,
        context={"obj": _Unserialisable(), "bad": _Hostile(), "set": {1}, "bytes": b"\xff\x00", "nan": float("nan")},
        user=_UserWithoutUsername(),
        risk_score="not a number",
    )
    row = audit_model.objects.get(event_id=event.event_id)
    assert row.additional_data["context"]["obj"] == "custom-object"
    assert row.additional_data["context"]["bad"] == "<unprintable _Hostile>"
    assert row.user_id == "b3c1f2a4-uuid-like" and row.username is None
    assert row.additional_data["risk_score"] is None


def test_custom_string_event_types_are_accepted(audit_model):
    security.emit("billing.invoice.voided", severity="error")
    assert audit_model.objects.get().severity == "error"


@override_settings(GRAPHQL_ENABLE_AUDIT_LOGGING=False)
def test_master_switch_records_nothing_anywhere(client, user, audit_model, audit_log_file):
    assert security.emit(EventType.DATA_READ) is None
    client.post("/login/", {"username": "alice", "password": "nope"})
    client.post("/login/", {"username": "alice", "password": "correct-horse-battery"})
    client.post("/logout/")
    assert audit_model.objects.count() == 0
    assert not audit_log_file.exists()


@override_settings(AUDIT_STORE_IN_DATABASE=False)
def test_database_sink_can_be_turned_off(audit_model, audit_log_file):
    security.emit(EventType.DATA_READ)
    assert audit_model.objects.count() == 0
    assert json.loads(audit_log_file.read_text())["event_type"] == "data.read"


@override_settings(AUDIT_STORE_IN_FILE=False)
def test_file_sink_can_be_turned_off(audit_model, audit_log_file):
    security.emit(EventType.DATA_READ)
    assert audit_model.objects.count() == 1
    assert not audit_log_file.exists()


@pytest.mark.parametrize("async_delivery", [False, True], ids=["sync", "async"])
def test_event_survives_a_rolled_back_transaction(audit_model, django_user_model, settings, async_delivery):
    settings.SECURITY_EVENT_ASYNC = async_delivery
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            django_user_model.objects.create_user(username="temp")
            event = security.emit(EventType.AUTH_LOGIN_FAILURE, outcome=Outcome.FAILURE)
            raise RuntimeError("roll back")
    security.flush(timeout=10)
    assert not django_user_model.objects.filter(username="temp").exists()
    assert audit_model.objects.filter(event_id=event.event_id).count() == 1


def test_deferring_an_event_to_commit_records_only_committed_work(audit_model):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            transaction.on_commit(lambda: security.emit(EventType.DATA_DELETE, action="rolled back"))
            raise RuntimeError("roll back")
    with transaction.atomic():
        transaction.on_commit(lambda: security.emit(EventType.DATA_DELETE, action="committed"))
    assert [r.additional_data["action"] for r in audit_model.objects.all()] == ["committed"]


def test_stored_rows_are_append_only(audit_model):
    security.emit(EventType.DATA_READ)
    row = audit_model.objects.get()
    row.username = "tampered"
    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.delete()
    with pytest.raises(AppendOnlyError):
        audit_model.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        audit_model.objects.update(username="tampered")
    with pytest.raises(AppendOnlyError):
        audit_model.objects.bulk_update([row], ["username"])
    assert audit_model.objects.get().username is None
    with allow_retention_delete():
        audit_model.objects.all().delete()
    assert audit_model.objects.count() == 0


def test_view_that_fails_after_emitting_still_records_with_scrubbed_error(client, audit_model):
    client.raise_request_exception = False
    assert client.get("/failing/").status_code == 500
    row = audit_model.objects.get(event_type="system.error")
    assert row.error_message == "boom with password=***REDACTED*** inside"
