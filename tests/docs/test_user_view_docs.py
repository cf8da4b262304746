"""Every code block of quickstart.md, admin.md, security-model.md and comparison.md, run.

``test_every_block_is_exercised`` pins the list of blocks: a block added to one
of these pages fails it until a test here (or the browser test, for the
JavaScript) runs the new block.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib import admin
from django.test import Client, override_settings

from tests.docs.markdown_blocks import block, blocks

ROOT = Path(__file__).resolve().parents[2]

EXERCISED = {
    "quickstart.md": [
        ("bash", "make demo"),
        ("python", 'INSTALLED_APPS += ["rail_django"]'),
        ("bash", "python manage.py migrate"),
        ("python", "def export_invoices"),
        ("python", "class Query(AuditQuery"),
        ("python", "GRAPHENE = {"),
        ("python", 'urlpatterns += [path("graphql/"'),
        ("js", "async function logFrontendAudit"),  # run in tests/sample_project/test_browser.py
    ],
    "admin.md": [
        ("python", 'Group.objects.get_or_create(name="Auditors")'),
        ("python", "AUDIT_ADMIN_ENABLED = False"),
        ("python", "ops_site = OpsAdminSite"),
    ],
    "security-model.md": [
        ("python", "redact({"),
        ("python", "RAIL_DJANGO_TRUSTED_PROXIES"),
        ("python", "AppendOnlyError"),
    ],
    "comparison.md": [],
}


def test_every_block_is_exercised():
    for page, expected in EXERCISED.items():
        found = blocks(page)
        assert [lang for lang, _ in found] == [lang for lang, _ in expected], page
        for (_, code), (_, marker) in zip(found, expected, strict=True):
            assert marker in code, (page, marker)


def _expected_results(code: str) -> list[tuple[str, object]]:
    """``(expression, value)`` for each ``expr`` line followed by a ``# -> value`` comment."""
    lines = code.splitlines()
    return [
        (lines[i - 1], ast.literal_eval(line.split("# ->", 1)[1].strip()))
        for i, line in enumerate(lines)
        if line.startswith("# ->")
    ]


# -- quickstart.md ---------------------------------------------------------------------------
@pytest.mark.sqlite_only
def test_make_demo_migrates_seeds_and_serves_the_sample():
    assert block("quickstart.md", "bash", "make demo").strip() == "make demo"
    for extra, port in (([], "8000"), (["PORT=8001"], "8001")):
        plan = subprocess.run(["make", "-n", "demo", *extra], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        steps = [line for line in plan.splitlines() if "manage.py" in line]
        assert [s.split("manage.py ")[1] for s in steps] == [
            "migrate --noinput", f"demo_setup --port {port}", f"runserver 127.0.0.1:{port}"
        ]
        assert all(s.startswith("cd sample_project && ") for s in steps)


# After the doc's additions: what a test run needs beyond `startproject`'s development settings.
TEST_SETTINGS = '''
ALLOWED_HOSTS = ["testserver"]
TEMPLATES[0]["DIRS"] = [BASE_DIR / "templates"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
'''

# Routes the driver uses, besides the admin (startproject's) and the doc's GraphQL route.
TEST_URLS = '''
from django.contrib.auth import views as auth_views

from myproject.views import export_invoices

urlpatterns += [path("login/", auth_views.LoginView.as_view()), path("export/", export_invoices)]
'''

DRIVER = '''
import json
import os

import django

os.environ["DJANGO_SETTINGS_MODULE"] = "myproject.settings"
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from rail_django.models import get_audit_event_model
from rail_django.security import security

get_user_model().objects.create_superuser("root", "root@example.com", "root-password-123")
client = Client(REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="QuickstartBrowser/1")
wrong = client.post("/login/", {"username": "root", "password": "nope"})
right = client.post("/login/", {"username": "root", "password": "root-password-123"})
export = client.get("/export/")
mutation = "mutation ($input: FrontendAuditEventInput!) { logFrontendAudit(input: $input) { ok error } }"
variables = {"input": {"appName": "billing", "modelName": "Invoice", "operation": "export", "component": "InvoiceList"}}
frontend = client.post("/graphql/", json.dumps({"query": mutation, "variables": variables}), content_type="application/json")
security.flush(timeout=30)  # the background writer has stored everything before the admin lists it
admin_list = client.get("/admin/rail_django/auditeventmodel/")
rows = get_audit_event_model().objects.order_by("id")
print(json.dumps({
    "statuses": [wrong.status_code, right.status_code, export.status_code, admin_list.status_code],
    "export": export.json(),
    "frontend": frontend.json(),
    "listed": admin_list.content.decode().count("QuickstartBrowser") + admin_list.content.decode().count("198.51.100.7"),
    "events": [[r.event_type, r.username, r.client_ip, r.user_agent, r.additional_data["action"]] for r in rows],
    "apps": settings.INSTALLED_APPS,
    "middleware": settings.MIDDLEWARE,
}))
'''


@pytest.mark.sqlite_only  # a project of its own, on its own SQLite file
def test_quickstart_blocks_make_a_working_project(tmp_path):
    """The blocks, verbatim, added to what `django-admin startproject` writes (nothing of it replaced)."""
    made = subprocess.run([sys.executable, "-m", "django", "startproject", "myproject", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    package = tmp_path / "myproject"
    generated: dict = {"__file__": str(package / "settings.py")}
    exec((package / "settings.py").read_text(), generated)
    with (package / "settings.py").open("a") as settings:
        settings.write("\n" + block("quickstart.md", "python", 'INSTALLED_APPS += ["rail_django"]'))
        settings.write(block("quickstart.md", "python", "GRAPHENE = {") + TEST_SETTINGS)
    with (package / "urls.py").open("a") as urls:
        urls.write("\n" + block("quickstart.md", "python", 'urlpatterns += [path("graphql/"') + TEST_URLS)
    (package / "views.py").write_text(block("quickstart.md", "python", "def export_invoices"))
    (package / "schema.py").write_text(block("quickstart.md", "python", "class Query(AuditQuery"))
    (tmp_path / "templates" / "registration").mkdir(parents=True)
    (tmp_path / "templates" / "registration" / "login.html").write_text("<form method=post>{{ form }}</form>")
    env = {key: value for key, value in __import__("os").environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)

    for line in block("quickstart.md", "bash", "python manage.py migrate").strip().splitlines():
        words = line.split()
        assert words[:2] == ["python", "manage.py"]
        result = subprocess.run([sys.executable, "manage.py", *words[2:]], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout

    (tmp_path / "drive.py").write_text(DRIVER)
    run = subprocess.run([sys.executable, "drive.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    # The blocks read as additions: everything startproject wrote is still there, in its order.
    assert out["apps"] == [*generated["INSTALLED_APPS"], "rail_django", "graphene_django"]
    assert out["middleware"] == [*generated["MIDDLEWARE"], "rail_django.security.middleware.context.SecurityContextMiddleware"]
    assert out["statuses"] == [200, 302, 200, 200]
    assert out["export"] == {"ok": True}
    assert out["frontend"] == {"data": {"logFrontendAudit": {"ok": True, "error": None}}}
    assert out["listed"] > 0
    browser = ["198.51.100.7", "QuickstartBrowser/1"]
    # create_superuser records the account and its two roles (issue 14), outside any request.
    created, events = out["events"][:3], out["events"][3:]
    assert [e[0] for e in created] == ["auth.account.created", "authz.role.assigned", "authz.role.assigned"]
    assert events == [
        ["auth.login.failure", None, *browser, "Login attempt failed"],
        ["auth.login.success", "root", *browser, "User logged in"],
        ["data.export", "root", *browser, "Exported invoices"],
        ["ui.action", "root", *browser, events[3][4]],
    ]


# -- admin.md --------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_auditors_group_block_lets_staff_read_the_trail(django_user_model):
    exec(block("admin.md", "python", 'Group.objects.get_or_create(name="Auditors")'), {})
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("ines", password="ines-password-123", is_staff=True)
    client = Client()
    with override_settings(GRAPHQL_ENABLE_AUDIT_LOGGING=False):
        client.force_login(user)
    assert client.get("/admin/rail_django/auditeventmodel/").status_code == 403
    user.groups.add(Group.objects.get(name="Auditors"))
    assert client.get("/admin/rail_django/auditeventmodel/").status_code == 200
    assert client.get("/admin/rail_django/auditeventmodel/dashboard/").status_code == 200
    assert client.get("/admin/rail_django/auditeventmodel/add/").status_code == 403


def test_admin_switch_block():
    from rail_django.read.admin import register_admin

    namespace: dict = {}
    exec(block("admin.md", "python", "AUDIT_ADMIN_ENABLED = False"), namespace)
    site = admin.AdminSite(name="switched-off")
    with override_settings(AUDIT_ADMIN_ENABLED=namespace["AUDIT_ADMIN_ENABLED"]):
        assert register_admin(site) is False
    assert site._registry == {}


def test_custom_admin_site_block():
    namespace: dict = {}
    exec(block("admin.md", "python", "ops_site = OpsAdminSite"), namespace)
    ops_site = namespace["ops_site"]
    assert [model._meta.label for model in ops_site._registry] == ["rail_django.AuditEventModel"]
    assert ops_site.site_header == "Operations"
    patterns, _, name = ops_site.urls
    assert name == "ops"
    [app_urls] = [p for p in patterns if str(p.pattern) == "rail_django/auditeventmodel/"]
    assert "rail_django_auditeventmodel_dashboard" in {p.name for p in app_urls.url_patterns}


# -- security-model.md -------------------------------------------------------------------------
def test_redaction_block_prints_what_the_page_says(capsys):
    code = block("security-model.md", "python", "redact({")
    namespace: dict = {}
    exec(code, namespace)
    expectations = _expected_results(code)
    assert len(expectations) == 2
    for expression, value in expectations:
        assert eval(expression, namespace) == value, expression


@pytest.mark.django_db(transaction=True)
def test_trusted_proxies_block(client, audit_model):
    namespace: dict = {}
    exec(block("security-model.md", "python", "RAIL_DJANGO_TRUSTED_PROXIES"), namespace)
    forged = "6.6.6.6, 203.0.113.50"  # the client sent 6.6.6.6; the proxy appended the peer it saw
    with override_settings(RAIL_DJANGO_TRUSTED_PROXIES=namespace["RAIL_DJANGO_TRUSTED_PROXIES"]):
        client.post("/login/", {"username": "x", "password": "y"}, REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR=forged)
        client.post("/login/", {"username": "x", "password": "y"}, REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR=forged)
    via_proxy, direct = audit_model.objects.order_by("id")
    assert (via_proxy.client_ip, via_proxy.additional_data["remote_addr"]) == ("203.0.113.50", "10.1.2.3")
    assert (direct.client_ip, direct.additional_data["remote_addr"]) == ("192.0.2.9", "192.0.2.9")


@pytest.mark.django_db(transaction=True)
def test_append_only_block(capsys, audit_model):
    from rail_django.security import EventType, security

    security.emit(EventType.DATA_READ, severity="debug")
    exec(block("security-model.md", "python", "AppendOnlyError"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("Audit events are append-only: save() on a stored event is refused.")
    assert audit_model.objects.get().severity == "debug"


def test_pages_are_linked_from_the_index():
    index = (ROOT / "docs" / "index.md").read_text()
    for page in EXERCISED:
        assert f"]({page})" in index, page
    text = (ROOT / "docs" / "comparison.md").read_text()
    assert "django-easy-audit 1.3.9" in text and "django-axes 8.3.1" in text and "django-auditlog 3.4.1" in text
