"""``export --format ocsf``: every mapped class validates against the OCSF JSON schema (offline)."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from rail_django.operations.ocsf import OCSF_VERSION

pytestmark = pytest.mark.django_db(transaction=True)

#: (event type, extra fields, expected class_uid, expected activity_id)
CASES = [
    ("auth.login.failure", {"outcome": "failure", "client_ip": "203.0.113.9", "request_path": "/login/",
                            "request_method": "POST", "user_agent": "curl/8", "error_message": "Invalid credentials",
                            "context": {"username_attempted": "alice"}}, 3002, 1),
    ("auth.login.success", {"user_id": "1", "username": "alice", "client_ip": "2001:db8::5"}, 3002, 1),
    ("auth.logout", {"user_id": "1", "username": "alice"}, 3002, 2),
    ("auth.token.issued", {"user_id": "1", "username": "alice"}, 3002, 3),
    ("auth.mfa.failure", {"outcome": "failure", "user_id": "1"}, 3002, 1),
    ("auth.token.invalid", {"outcome": "failure"}, 3002, 99),  # no user, no address
    ("data.create", {"user_id": "3", "username": "bob", "resource": {"type": "order", "name": "Order", "id": "9"},
                     "context": {"operation_name": "createOrder"}, "correlation_id": "req-1"}, 6003, 1),
    ("data.read", {"user_id": "3"}, 6003, 2),
    ("data.update", {"outcome": "denied", "user_id": "3", "resource": {"type": None, "name": None, "id": "4"}}, 6003, 3),
    ("data.delete", {}, 6003, 4),  # anonymous, no address
    ("data.bulk", {"user_id": "3"}, 6003, 99),
    ("data.export", {}, 6003, 2),
    ("query.blocked.depth", {"outcome": "blocked", "client_ip": "198.51.100.1"}, 6003, 99),
    ("security.alert", {"severity": "critical", "outcome": "failure", "client_ip": "203.0.113.9",
                        "context": {"rule": "failed_logins_per_ip", "key": "203.0.113.9", "count": 10, "window": 300}}, 2004, 1),
    ("security.alert", {"severity": "critical", "outcome": "failure",
                        "context": {"rule": "failed_logins_per_user", "key": "alice", "count": 5, "window": 300}}, 2004, 1),
    ("authz.permission.denied", {"outcome": "denied", "severity": "warning"}, 0, 99),
    ("ui.action", {"user_id": "3", "severity": "error"}, 0, 99),
    ("system.config.change", {"severity": "debug"}, 0, 99),
    ("myproject.custom", {}, 0, 99),
]


@pytest.fixture(scope="module")
def validators():
    """A validator per OCSF class, for the declared version and the newest packaged one."""
    result = {}
    for version in (OCSF_VERSION, "1.8.0"):
        schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
        for class_uid in {case[2] for case in CASES}:
            name = schema.lookup_class_name_from_uid(class_uid=class_uid)
            result[(version, class_uid)] = Draft202012Validator(schema.get_class_schema(class_name=name, profiles=[]))
    return result


def test_every_event_maps_to_a_valid_ocsf_record(insert, validators):
    for index, (event_type, fields, _, _) in enumerate(CASES):
        insert(event_type=event_type, age=timedelta(minutes=len(CASES) - index), **fields)
    out = io.StringIO()
    call_command("audit_management", "export", "--format", "ocsf", "--event-type", "auth.*", "--event-type", "data.*",
                 "--event-type", "query.*", "--event-type", "security.alert", "--event-type", "authz.*",
                 "--event-type", "ui.action", "--event-type", "system.config.change", "--event-type", "myproject.custom",
                 stdout=out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) == len(CASES)
    for record, (event_type, _, class_uid, activity_id) in zip(records, CASES, strict=True):
        assert record["metadata"]["event_code"] == event_type
        assert (record["class_uid"], record["activity_id"]) == (class_uid, activity_id), event_type
        assert record["type_uid"] == class_uid * 100 + activity_id
        for version in (OCSF_VERSION, "1.8.0"):
            errors = [f"{list(e.path)}: {e.message}" for e in validators[(version, class_uid)].iter_errors(record)]
            assert errors == [], f"{event_type} against OCSF {version}: {errors}"


def test_ocsf_records_keep_the_facts(insert):
    [failure] = insert(event_type="auth.login.failure", outcome="failure", client_ip="203.0.113.9",
                       context={"username_attempted": "alice"}, correlation_id="req-7", severity="warning")
    [alert] = insert(event_type="security.alert", severity="critical", outcome="failure",
                     context={"rule": "failed_logins_per_user", "key": "alice", "count": 5, "window": 300})
    out = io.StringIO()
    call_command("audit_management", "export", "--format", "ocsf", "--event-type", "auth.*",
                 "--event-type", "security.alert", stdout=out)
    by_code = {json.loads(line)["metadata"]["event_code"]: json.loads(line) for line in out.getvalue().splitlines()}
    login = by_code["auth.login.failure"]
    assert login["user"] == {"name": "alice"}
    assert login["src_endpoint"] == {"ip": "203.0.113.9"}
    assert login["status_id"] == 2 and login["severity_id"] == 3
    assert login["metadata"]["uid"] == str(failure.event_id)
    assert login["metadata"]["correlation_uid"] == "req-7"
    assert login["time"] == int(failure.timestamp.timestamp() * 1000)
    assert login["unmapped"]["rail_django"]["context"] == {"username_attempted": "alice"}
    finding = by_code["security.alert"]
    assert finding["severity_id"] == 5
    assert finding["finding_info"]["uid"] == str(alert.event_id)
    assert finding["finding_info"]["analytic"]["name"] == "failed_logins_per_user"
    assert finding["observables"] == [{"name": "key", "type_id": 4, "type": "User Name", "value": "alice"}]
