"""Accounts and privileges recorded with no code: Django's model signals, through real saves, views and the admin."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.tokens import default_token_generator
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tests.events.conftest import context_of, row_text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.events.urls")]

User = get_user_model()
PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "a-new-Passphrase-42"


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")
    client.force_login(admin)
    client.admin = admin
    return client


def _types(rows) -> list[str]:
    return [row.event_type for row in rows()]


# -- account lifecycle -----------------------------------------------------------------------------


def test_creating_a_user_records_account_created(rows):
    alice = User.objects.create_user("alice", password=PASSWORD)
    (created,) = rows("auth.account.created")
    assert created.additional_data["resource"] == {"type": "auth.user", "name": "alice", "id": str(alice.pk)}
    assert context_of(created) == {"target_user_id": str(alice.pk), "target_username": "alice"}
    assert created.severity == "info"
    assert not rows("authz.role.assigned")  # a plain user starts with no role
    assert not rows("auth.password.changed")  # creating is not changing


def test_creating_a_superuser_records_its_roles_and_superuser_is_critical(rows):
    User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    assert _types(rows)[0] == "auth.account.created"
    roles = {context_of(r)["flag"]: r for r in rows("authz.role.assigned")}
    assert set(roles) == {"is_staff", "is_superuser"}
    assert roles["is_superuser"].severity == "critical"
    assert roles["is_staff"].severity == "warning"


def test_deleting_a_user_records_account_deleted(rows, user):
    pk = user.pk
    user.delete()
    (deleted,) = rows("auth.account.deleted")
    assert context_of(deleted) == {"target_user_id": str(pk), "target_username": "alice"}
    assert deleted.severity == "warning"


def test_switching_is_active_records_disabled_then_enabled(rows, user):
    user.is_active = False
    user.save()
    user.is_active = True
    user.save()
    (disabled,) = rows("auth.account.disabled")
    (enabled,) = rows("auth.account.enabled")
    assert context_of(disabled)["target_username"] == "alice" and context_of(disabled)["value"] is False
    assert disabled.timestamp <= enabled.timestamp


def test_a_save_that_changes_nothing_watched_records_nothing(rows, user):
    before = len(rows())
    user.first_name = "Alice"
    user.save()
    assert len(rows()) == before


def test_the_login_save_of_last_login_costs_no_extra_query(user):
    with CaptureQueriesContext(connection) as queries:
        user.save(update_fields=["last_login"])
    assert len(queries) == 1  # the UPDATE alone: no read of the watched fields


def test_a_rolled_back_change_records_nothing(rows, user):
    with pytest.raises(RuntimeError), transaction.atomic():
        user.is_superuser = True
        user.save()
        raise RuntimeError("roll back")
    assert not rows("authz.role.assigned")
    user.is_superuser = True
    user.save()
    assert len(rows("authz.role.assigned")) == 1


# -- passwords ---------------------------------------------------------------------------------------


def test_set_password_and_save_records_password_changed_and_never_the_hash(rows, user, audit_log_file):
    old_hash = user.password
    user.set_password(NEW_PASSWORD)
    user.save()
    (changed,) = rows("auth.password.changed")
    assert context_of(changed) == {"target_user_id": str(user.pk), "target_username": "alice", "usable": True}
    for secret in (old_hash, user.password, NEW_PASSWORD, PASSWORD):
        assert secret not in row_text(changed)
        assert secret not in audit_log_file.read_text()


def test_set_unusable_password_is_a_password_change(rows, user):
    user.set_unusable_password()
    user.save()
    (changed,) = rows("auth.password.changed")
    assert context_of(changed)["usable"] is False


def test_password_change_view_records_the_change_by_the_user_himself(client, rows, user):
    client.force_login(user)
    response = client.post("/password_change/", {
        "old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD,
    })
    assert response.status_code == 302, response.content[:500]
    (changed,) = rows("auth.password.changed")
    assert changed.user_id == str(user.pk) and changed.username == "alice"
    assert changed.request_path == "/password_change/" and changed.request_method == "POST"
    assert NEW_PASSWORD not in row_text(changed)


def test_password_reset_confirm_records_the_change(client, rows, user):
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    response = client.get(f"/reset/{uid}/{token}/")
    assert response.status_code == 302  # to the set-password URL, the token kept in the session
    response = client.post(response.url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content[:500]
    (changed,) = rows("auth.password.changed")
    assert context_of(changed)["target_username"] == "alice"
    assert changed.user_id is None  # an anonymous visitor holding the reset link
    assert token not in row_text(changed)


def test_admin_password_form_records_the_change_by_the_admin(admin_client, rows, user):
    response = admin_client.post(f"/admin/auth/user/{user.pk}/password/", {
        "password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true",
    })
    assert response.status_code == 302, response.content[:800]
    (changed,) = rows("auth.password.changed")
    assert changed.username == "root" and context_of(changed)["target_username"] == "alice"


# -- role flags ------------------------------------------------------------------------------------


def test_is_staff_and_is_superuser_switches_are_role_events(rows, user):
    user.is_staff = True
    user.save()
    user.is_superuser = True
    user.save()
    user.is_superuser = False
    user.is_staff = False
    user.save()
    assigned = rows("authz.role.assigned")
    revoked = rows("authz.role.revoked")
    assert [(context_of(r)["flag"], r.severity) for r in assigned] == [("is_staff", "warning"), ("is_superuser", "critical")]
    assert sorted(context_of(r)["flag"] for r in revoked) == ["is_staff", "is_superuser"]
    assert all(context_of(r)["target_username"] == "alice" for r in assigned + revoked)


# -- group membership and permissions -------------------------------------------------------------


@pytest.fixture
def editors():
    return Group.objects.create(name="editors")


def _pairs(found):
    return sorted((context_of(r).get("target_username") or context_of(r).get("group"),
                   context_of(r).get("group") if "target_username" in context_of(r) else None,
                   context_of(r).get("permission"), context_of(r)["operation"]) for r in found)


def test_adding_and_removing_a_group_from_the_user_side(rows, user, editors):
    user.groups.add(editors)
    user.groups.remove(editors)
    (assigned,) = rows("authz.role.assigned")
    (revoked,) = rows("authz.role.revoked")
    assert context_of(assigned) == {"target_user_id": str(user.pk), "target_username": "alice",
                                    "group": "editors", "group_id": str(editors.pk), "operation": "add"}
    assert context_of(revoked)["operation"] == "remove" and context_of(revoked)["group"] == "editors"


def test_adding_and_clearing_users_from_the_group_side(rows, user, editors):
    bob = User.objects.create_user("bob")
    editors.user_set.add(user, bob)
    editors.user_set.clear()
    assert _pairs(rows("authz.role.assigned")) == [("alice", "editors", None, "add"), ("bob", "editors", None, "add")]
    assert _pairs(rows("authz.role.revoked")) == [("alice", "editors", None, "clear"), ("bob", "editors", None, "clear")]


def test_clear_from_the_user_side_names_every_group_it_took(rows, user, editors):
    auditors = Group.objects.create(name="auditors")
    user.groups.add(editors, auditors)
    user.groups.clear()
    assert sorted(context_of(r)["group"] for r in rows("authz.role.revoked")) == ["auditors", "editors"]


def test_set_records_only_what_changed(rows, user, editors):
    auditors = Group.objects.create(name="auditors")
    user.groups.set([editors])
    user.groups.set([editors, auditors])  # adds auditors only
    user.groups.set([auditors])  # removes editors only
    assert [context_of(r)["group"] for r in rows("authz.role.assigned")] == ["editors", "auditors"]
    assert [context_of(r)["group"] for r in rows("authz.role.revoked")] == ["editors"]


def test_removing_a_group_the_user_is_not_in_records_nothing(rows, user, editors):
    user.groups.remove(editors)
    assert not rows("authz.role.revoked")


def test_user_permissions_granted_and_taken(rows, user):
    permission = Permission.objects.get(codename="change_group")
    user.user_permissions.add(permission)
    user.user_permissions.remove(permission)
    (granted,) = rows("authz.role.assigned")
    (taken,) = rows("authz.role.revoked")
    assert context_of(granted)["permission"] == "auth.change_group" and context_of(granted)["target_username"] == "alice"
    assert context_of(taken)["permission"] == "auth.change_group"


def test_group_permissions_from_both_sides(rows, editors):
    permission = Permission.objects.get(codename="delete_user")
    editors.permissions.add(permission)
    permission.group_set.remove(editors)
    editors.permissions.add(permission)
    editors.permissions.clear()
    found = rows("authz.role.assigned") + rows("authz.role.revoked")
    assert [(r.event_type, context_of(r)["operation"]) for r in sorted(found, key=lambda r: r.timestamp)] == [
        ("authz.role.assigned", "add"), ("authz.role.revoked", "remove"),
        ("authz.role.assigned", "add"), ("authz.role.revoked", "clear"),
    ]
    assert all(context_of(r)["group"] == "editors" for r in found)
    assert all(context_of(r)["permission"] == "auth.delete_user" for r in found)
    assert all(r.additional_data["resource"]["type"] == "auth.group" for r in found)


def test_admin_change_form_assigns_a_group_and_staff_with_the_admin_as_actor(admin_client, rows, user, editors):
    response = admin_client.post(f"/admin/auth/user/{user.pk}/change/", {
        "username": "alice", "first_name": "", "last_name": "", "email": "",
        "is_active": "on", "is_staff": "on", "groups": [str(editors.pk)],
        "last_login_0": "", "last_login_1": "", "date_joined_0": "2030-01-01", "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2030-01-01", "initial-date_joined_1": "00:00:00",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    changes = [r for r in rows() if r.event_type.startswith("authz.role.") and context_of(r)["target_username"] == "alice"]
    assert sorted(context_of(r).get("flag") or context_of(r).get("group") for r in changes) == ["editors", "is_staff"]
    assert all(r.username == "root" and r.request_path.startswith("/admin/") for r in changes)
