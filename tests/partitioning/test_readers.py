"""Everything that reads the audit table works on the partitioned table: admin, dashboard, summary, export,
GraphQL, verify; and the dashboard's queries prune partitions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from rail_django.operations.partitions import status
from rail_django.security import EventType, security
from tests.admin.conftest import logged_in_client
from tests.partitioning.conftest import TABLE

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/admin/rail_django/auditeventmodel/"


@pytest.fixture
def stored(partitioned, audit_model, settings):
    """Events on the partitioned table (in its legacy partition, which covers today), sealed."""
    settings.AUDIT_INTEGRITY_KEY = "partition-readers-key-0123456789"
    settings.AUDIT_STORE_IN_FILE = False
    now = timezone.now()
    rows = [
        audit_model(event_type="auth.login.failure", severity="warning", success=False, timestamp=now - timedelta(hours=h),
                    client_ip="203.0.113.9", additional_data={"outcome": "failure", "context": {"username_attempted": "root"}})
        for h in (1, 2, 3)
    ]
    audit_model.objects.bulk_create(rows)
    for _ in range(2):
        security.emit(EventType.DATA_READ, action="read")
    security.flush()
    return audit_model.objects.count()


def _partitions_holding_rows() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT tableoid::regclass::text FROM {TABLE}")
        return {row[0] for row in cursor.fetchall()}


def test_admin_list_event_page_and_dashboard(stored, django_user_model, audit_model):
    client = logged_in_client(django_user_model.objects.create_superuser("root", "r@example.com", "root-password-123"))
    response = client.get(LIST)
    assert response.status_code == 200 and response.context["cl"].result_count == stored
    event = audit_model.objects.filter(event_type="auth.login.failure").first()
    assert client.get(f"{LIST}{event.pk}/change/").status_code == 200
    dashboard = client.get(f"{LIST}dashboard/", {"window": "24h"})
    assert dashboard.status_code == 200 and b"203.0.113.9" in dashboard.content


def test_summary_export_and_verify(stored, tmp_path):
    out = StringIO()
    call_command("audit_management", "summary", "--format", "json", stdout=out)
    assert json.loads(out.getvalue())["total"] >= stored
    target = tmp_path / "all.jsonl"
    call_command("audit_management", "export", "--format", "jsonl", "--output", str(target), stdout=StringIO())
    assert len(target.read_text().splitlines()) >= stored
    report = StringIO()
    call_command("audit_management", "verify", stdout=report)
    assert "Integrity chain OK" in report.getvalue()


def test_graphql_audit_query(stored, client, django_user_model):
    reader = django_user_model.objects.create_user("reader", password="reader-password-123")
    reader.user_permissions.add(Permission.objects.get(codename="view_auditeventmodel"))
    client.force_login(reader)
    body = {"query": "{ auditEvents(eventType: \"auth.login.failure\") { totalCount items { eventType } } }"}
    response = client.post("/graphql/", json.dumps(body), content_type="application/json")
    assert response.json()["data"]["auditEvents"]["totalCount"] == 3


def test_a_time_window_reads_only_its_partitions(stored):
    """The dashboard's and the list's queries filter on timestamp: the plan names only the partitions in range."""
    newest = [p for p in status() if p.lower is not None and not p.is_default]
    assert newest, "premade partitions exist"
    since = newest[-1].lower
    with connection.cursor() as cursor:
        cursor.execute(f'EXPLAIN SELECT count(*) FROM {TABLE} WHERE "timestamp" >= %s', [since])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert newest[-1].name in plan
    assert f"{TABLE}_legacy" not in plan  # pruned
    assert _partitions_holding_rows() >= {f"{TABLE}_legacy"}
    assert since > datetime.now(UTC)


def test_the_dashboard_queries_prune_to_the_recent_partitions(partitioned_long_ago, django_user_model, capsys):
    """Converted 60 days ago with weekly partitions: the dashboard's 24-hour queries never read the legacy partition."""
    security.emit(EventType.DATA_READ, action="read")
    security.flush()
    client = logged_in_client(django_user_model.objects.create_superuser("root", "r@example.com", "root-password-123"))
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"{LIST}dashboard/", {"window": "24h"}).status_code == 200
    audit = [q["sql"] for q in queries if TABLE in q["sql"] and q["sql"].lstrip().upper().startswith("SELECT")]
    assert audit, "the dashboard read the audit table"
    plans = []
    with connection.cursor() as cursor:
        for sql in audit:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            plans.append(plan)
            assert f"{TABLE}_legacy" not in plan, plan
            assert f"{TABLE}_p" in plan, plan
    with capsys.disabled():
        print("\n-- dashboard plan (first audit query) --\n" + audit[0] + "\n" + plans[0])
