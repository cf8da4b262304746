"""Stored audit rows as OCSF events (Open Cybersecurity Schema Framework, version :data:`OCSF_VERSION`).

=========================================  ==========================  ==============
rail-django event types                    OCSF class                  class_uid
=========================================  ==========================  ==============
``auth.*``                                 Authentication              3002
``data.*``, ``query.*`` (GraphQL)          API Activity                6003
``security.alert``                         Detection Finding           2004
everything else                            Base Event                  0
=========================================  ==========================  ==============

Every record carries ``metadata.uid`` (the event id), ``metadata.event_code``
(the rail-django event type), ``metadata.correlation_uid`` and, under
``unmapped.rail_django``, the fields OCSF has no place for (outcome, context,
risk score, session digest), so nothing is lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rail_django import __version__

OCSF_VERSION = "1.1.0"

SEVERITY_IDS = {"debug": 1, "info": 1, "warning": 3, "error": 4, "critical": 5}
SEVERITY_NAMES = {1: "Informational", 3: "Medium", 4: "High", 5: "Critical", 0: "Unknown"}

_AUTH_ACTIVITIES = {
    "auth.login.success": (1, "Logon"),
    "auth.login.failure": (1, "Logon"),
    "auth.mfa.success": (1, "Logon"),
    "auth.mfa.failure": (1, "Logon"),
    "auth.logout": (2, "Logoff"),
    "auth.token.issued": (3, "Authentication Ticket"),
}
_API_ACTIVITIES = {
    "data.create": (1, "Create"),
    "data.read": (2, "Read"),
    "data.sensitive.access": (2, "Read"),
    "data.export": (2, "Read"),
    "data.update": (3, "Update"),
    "data.delete": (4, "Delete"),
}
_OTHER = (99, "Other")


def service_name() -> str:
    """The service users authenticate to: the project package that holds ``ROOT_URLCONF``."""
    from django.conf import settings

    return str(getattr(settings, "ROOT_URLCONF", "") or "django").split(".")[0]


def _millis(moment: Any) -> int:
    if isinstance(moment, datetime):
        return int(moment.timestamp() * 1000)
    return int(datetime.fromisoformat(str(moment)).timestamp() * 1000)


def _user(row: dict[str, Any], name: str | None = None) -> dict[str, Any] | None:
    user: dict[str, Any] = {}
    if row.get("user_id"):
        user["uid"] = str(row["user_id"])
    if name or row.get("username"):
        user["name"] = str(name or row["username"])
    return user or None


def _endpoint(row: dict[str, Any]) -> dict[str, Any] | None:
    return {"ip": str(row["client_ip"])} if row.get("client_ip") else None


def _http_request(row: dict[str, Any]) -> dict[str, Any] | None:
    request: dict[str, Any] = {}
    if row.get("request_method"):
        request["http_method"] = row["request_method"]
    if row.get("request_path"):
        request["url"] = {"path": row["request_path"]}
    if row.get("user_agent"):
        request["user_agent"] = row["user_agent"]
    return request or None


def _base(row: dict[str, Any], class_uid: int, class_name: str, category: tuple[int, str | None], activity: tuple[int, str]) -> dict[str, Any]:
    data = row.get("additional_data") or {}
    outcome = data.get("outcome") or ("success" if row.get("success") else "failure")
    severity_id = SEVERITY_IDS.get(str(row.get("severity")), 0)
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": {"name": "rail-django", "vendor_name": "rail-django", "version": __version__},
        "uid": str(row["event_id"]),
        "event_code": row["event_type"],
        "log_name": "audit",
    }
    if row.get("correlation_id"):
        metadata["correlation_uid"] = row["correlation_id"]
    record: dict[str, Any] = {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category[0],
        "activity_id": activity[0],
        "activity_name": activity[1],
        "type_uid": class_uid * 100 + activity[0],
        "time": _millis(row["timestamp"]),
        "severity_id": severity_id,
        "severity": SEVERITY_NAMES.get(severity_id, "Unknown"),
        "status_id": 1 if outcome == "success" else 2,
        "status": "Success" if outcome == "success" else "Failure",
        "status_detail": outcome if not row.get("error_message") else f"{outcome}: {row['error_message']}",
        "message": data.get("action") or row["event_type"],
        "metadata": metadata,
        "unmapped": {
            "rail_django": {
                "event_type": row["event_type"],
                "outcome": outcome,
                "context": data.get("context") or {},
                "resource": data.get("resource") or {},
                "risk_score": data.get("risk_score"),
                "remote_addr": data.get("remote_addr"),
                "session_id": row.get("session_id"),
            }
        },
    }
    if category[1]:
        record["category_name"] = category[1]
    return record


def _authentication(row: dict[str, Any]) -> dict[str, Any]:
    event_type = row["event_type"]
    record = _base(row, 3002, "Authentication", (3, "Identity & Access Management"), _AUTH_ACTIVITIES.get(event_type, _OTHER))
    context = (row.get("additional_data") or {}).get("context") or {}
    # A failed login has no user, only the name someone tried.
    record["user"] = _user(row, context.get("username_attempted")) or {"name": "unknown", "type_id": 0}
    record["service"] = {"name": service_name()}
    if event_type.startswith("auth.mfa."):
        record["is_mfa"] = True
    for key, value in (("src_endpoint", _endpoint(row)), ("http_request", _http_request(row))):
        if value:
            record[key] = value
    return record


def _api_activity(row: dict[str, Any]) -> dict[str, Any]:
    data = row.get("additional_data") or {}
    context = data.get("context") or {}
    resource = data.get("resource") or {}
    record = _base(row, 6003, "API Activity", (6, "Application Activity"), _API_ACTIVITIES.get(row["event_type"], _OTHER))
    user = _user(row)
    record["actor"] = {"user": user} if user else {"user": {"name": "anonymous", "type_id": 0}}
    operation = context.get("operation_name") or resource.get("name") or data.get("action") or row["event_type"]
    record["api"] = {"operation": str(operation)}
    if row.get("correlation_id"):
        record["api"]["request"] = {"uid": row["correlation_id"]}
    record["src_endpoint"] = _endpoint(row) or {"name": "unknown"}
    if resource.get("name") or resource.get("id"):
        details = {"type": resource.get("type")} if resource.get("type") else {}
        details.update({k: str(resource[f]) for k, f in (("name", "name"), ("uid", "id")) if resource.get(f)})
        record["resources"] = [details]
    request = _http_request(row)
    if request:
        record["http_request"] = request
    return record


def _detection_finding(row: dict[str, Any]) -> dict[str, Any]:
    data = row.get("additional_data") or {}
    context = data.get("context") or {}
    record = _base(row, 2004, "Detection Finding", (2, "Findings"), (1, "Create"))
    rule = str(context.get("rule") or "security.alert")
    record["status_id"], record["status"] = 1, "New"  # a finding's status is its triage state
    record["finding_info"] = {
        "uid": str(row["event_id"]),
        "title": data.get("action") or rule,
        "types": [rule],
        "analytic": {"name": rule, "type_id": 1, "type": "Rule"},
    }
    key = context.get("key")
    if key:
        observable = (2, "IP Address") if rule == "failed_logins_per_ip" else (4, "User Name")
        record["observables"] = [{"name": "key", "type_id": observable[0], "type": observable[1], "value": str(key)}]
    return record


def _base_event(row: dict[str, Any]) -> dict[str, Any]:
    return _base(row, 0, "Base Event", (0, None), _OTHER)


def to_ocsf(row: dict[str, Any]) -> dict[str, Any]:
    """The OCSF record for one stored row (a dict of the model's fields)."""
    event_type = str(row["event_type"])
    if event_type == "security.alert":
        return _detection_finding(row)
    if event_type.startswith("auth."):
        return _authentication(row)
    if event_type.startswith(("data.", "query.")):
        return _api_activity(row)
    return _base_event(row)
