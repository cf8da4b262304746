"""django-hijack: impersonation started / ended, and every event in between names the real user."""

from __future__ import annotations

import pytest

from tests.events.conftest import context_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.integrations.urls")]


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")


def test_impersonation_is_recorded_and_names_the_real_user_throughout(client, rows, root, user):
    assert client.login(username="root", password="root-password-1")
    response = client.post("/hijack/acquire/", {"user_pk": user.pk, "next": "/plain/"})
    assert response.status_code == 302

    (started,) = rows("auth.impersonation.started")
    assert (started.username, started.user_id) == ("alice", str(user.pk))
    assert context_of(started) == {"impersonator": "root", "impersonator_id": str(root.pk)}
    assert started.severity == "warning"
    assert started.additional_data["resource"] == {"type": "auth.user", "name": "alice", "id": str(user.pk)}

    client.get("/emit/")  # an event of the project's own, emitted while impersonating
    (read,) = rows("data.read")
    assert read.username == "alice"
    assert context_of(read) == {"impersonator": "root", "impersonator_id": str(root.pk)}

    assert client.post("/hijack/release/", {"next": "/plain/"}).status_code == 302
    (ended,) = rows("auth.impersonation.ended")
    assert ended.username == "alice" and context_of(ended)["impersonator"] == "root"

    client.get("/emit/")  # back as root: no impersonator any more
    after = rows("data.read")[-1]
    assert after.username == "root" and "impersonator" not in context_of(after)


def test_an_ordinary_session_has_no_impersonator(client, rows, user):
    client.force_login(user)
    client.get("/emit/")
    (read,) = rows("data.read")
    assert "impersonator" not in context_of(read)


def test_a_task_queued_while_impersonating_carries_the_impersonator(client, rows, root, user):
    from rail_django.security import capture_context

    assert client.login(username="root", password="root-password-1")
    client.post("/hijack/acquire/", {"user_pk": user.pk})
    snapshots = []
    from django.test import RequestFactory

    from rail_django.capture.context import AuditContext, reset_current_context, set_current_context

    request = RequestFactory().get("/")
    request.session = client.session
    request.user = user
    token = set_current_context(AuditContext(request))
    try:
        snapshots.append(capture_context())
    finally:
        reset_current_context(token)
    assert snapshots[0]["username"] == "alice"
    assert snapshots[0]["tags"] == {"impersonator": "root", "impersonator_id": str(root.pk)}
