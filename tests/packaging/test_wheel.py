"""The distribution a user installs: ``python -m build`` makes an sdist and a wheel, and the WHEEL works alone.

The wheel is installed into a fresh virtualenv (pip fetches its dependencies,
from its cache when it can) and used from a temporary Django project that
this module writes, with no source tree on the path: what ``pip install
rail-django`` gives a user, not what an editable checkout gives us.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rail_django"

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]  # builds once, on the SQLite pass


def _package_files() -> set[str]:
    """Every file a built distribution must carry: the code (migrations included) and the templates."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".html")
    }


def _clean_env() -> dict[str, str]:
    """The environment minus anything that would put the checkout or its settings on the path."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE"}
    return {key: value for key, value in os.environ.items() if key not in drop}


def _run(args: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> tuple[Path, Path, str]:
    """``python -m build`` (sdist, then the wheel built from that sdist): (sdist, wheel, build output)."""
    out = tmp_path_factory.mktemp("dist")
    # A copy without the checkout's *.egg-info: setuptools would reuse its stale SOURCES.txt,
    # and an sdist could then look complete while MANIFEST.in is wrong.
    source = tmp_path_factory.mktemp("source") / "rail-django"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "*.egg-info", "build", "dist", "__pycache__", "*.sqlite3", "logs", "node_modules"))
    env = _clean_env()
    # PYTHONDONTWRITEBYTECODE makes setuptools print "byte-compiling is disabled" notices of its own.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)], cwd=out, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    [sdist] = out.glob("rail_django-*.tar.gz")
    [wheel] = out.glob("rail_django-*-py3-none-any.whl")
    return sdist, wheel, result.stdout + result.stderr


@pytest.fixture(scope="module")
def venv_python(dist, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel (and only the wheel) of rail-django installed."""
    _, wheel, _ = dist
    home = tmp_path_factory.mktemp("wheel-venv")
    started = time.monotonic()
    created = _run([sys.executable, "-m", "venv", home / "venv"], cwd=home)
    assert created.returncode == 0, created.stderr
    python = home / "venv" / "bin" / "python"
    installed = _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel], cwd=home)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    print(f"wheel venv: created and installed in {time.monotonic() - started:.1f}s")
    return python


SETTINGS = '''
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "wheel-smoke-" + "x" * 50
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rail_django",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "rail_django.security.middleware.context.SecurityContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "smoke.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
STATIC_URL = "static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
'''

URLS = '''
from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
'''

DRIVER = '''
import json
import os

import django

os.environ["DJANGO_SETTINGS_MODULE"] = "smoke.settings"
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
from django.test.utils import setup_test_environment

import rail_django
from rail_django.models import get_audit_event_model
from rail_django.security import EventType, Outcome, security

setup_test_environment()  # so responses list the templates they were rendered with
client = Client(REMOTE_ADDR="198.51.100.9")
failed = client.post("/admin/login/?next=/admin/", {"username": "mallory", "password": "guess-1"})
emitted = security.emit(EventType.DATA_EXPORT, outcome=Outcome.SUCCESS, action="Wheel smoke export")
security.flush(timeout=30)
get_user_model().objects.create_superuser("root", "root@example.com", "root-password-123")
client.force_login(get_user_model().objects.get(username="root"))
listing = client.get("/admin/rail_django/auditeventmodel/")
dashboard = client.get("/admin/rail_django/auditeventmodel/dashboard/?window=1h")
security.flush(timeout=30)
rows = get_audit_event_model().objects.order_by("id")


def templates(response):
    return sorted({t.origin.name for t in response.templates if "rail_django" in (t.name or "")})


print(json.dumps({
    "package": rail_django.__file__,
    "django": django.get_version(),
    "failed_login_status": failed.status_code,
    "emitted": str(emitted.event_id),
    "events": [[r.event_type, r.client_ip, r.additional_data.get("context", {}).get("username_attempted")]
               for r in rows],
    "listing": [listing.status_code, "Security dashboard" in listing.content.decode(), templates(listing)],
    "dashboard": [dashboard.status_code, templates(dashboard)],
}))
'''


@pytest.fixture(scope="module")
def project(venv_python, tmp_path_factory) -> Path:
    """A new Django project (admin, the app, the middleware) in a temporary folder, migrated."""
    root = tmp_path_factory.mktemp("smoke-project")
    (root / "smoke").mkdir()
    (root / "smoke" / "__init__.py").write_text("")
    (root / "smoke" / "settings.py").write_text(SETTINGS)
    (root / "smoke" / "urls.py").write_text(URLS)
    (root / "manage.py").write_text(
        "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'smoke.settings')\n"
        "from django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n"
    )
    migrated = _run([venv_python, "manage.py", "migrate", "--noinput"], cwd=root)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "Applying rail_django.0001_initial... OK" in migrated.stdout
    return root


@pytest.fixture(scope="module")
def driven(venv_python, project) -> dict:
    (project / "drive.py").write_text(DRIVER)
    result = _run([venv_python, "drive.py"], cwd=project, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_build_prints_no_warning(dist):
    _, _, output = dist
    assert "warning" not in output.lower(), output


def test_sdist_carries_the_code_migrations_and_templates(dist):
    sdist, _, _ = dist
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = _package_files() - names
    assert not missing, missing
    assert {"rail_django/migrations/0001_initial.py", "rail_django/templates/rail_django/admin/dashboard.html"} <= names
    assert {"setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in"} <= names


def test_wheel_carries_exactly_the_package(dist):
    _, wheel, _ = dist
    with zipfile.ZipFile(wheel) as archive:
        names = {name for name in archive.namelist() if not name.startswith("rail_django-")}
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert names == _package_files()
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    assert "Django<6.2,>=5.2" in requires
    assert not any(r.lower().startswith("django-ipware") for r in requires)


def test_the_installed_package_is_the_wheel_not_the_checkout(driven, venv_python):
    package = Path(driven["package"]).resolve()
    assert package.is_relative_to(venv_python.parent.parent.resolve())
    assert not package.is_relative_to(ROOT)
    assert driven["django"].split(".")[:2] >= ["5", "2"]


def test_a_failed_login_and_an_emitted_event_are_stored(driven):
    assert driven["failed_login_status"] == 200  # the admin login form again, with its error
    # Account set-up events (auth.account.created, authz.role.assigned) are recorded too; these are the smoke's own.
    events = [e for e in driven["events"] if not e[0].startswith(("auth.account.", "authz.role."))]
    [failure, *others] = events
    # No user "mallory" exists: the attempted name is kept as a keyed hash (AUDIT_ATTEMPTED_USERNAME = "known").
    assert failure[:2] == ["auth.login.failure", "198.51.100.9"] and failure[2].startswith("hash:")
    assert others == [
        ["data.export", None, None],  # emitted outside any request: no client IP
        ["auth.login.success", None, None],  # force_login sends user_logged_in, without a request
    ]


def test_admin_list_and_dashboard_render_with_the_wheels_templates(driven, venv_python):
    site_packages = venv_python.parent.parent.resolve()
    status, dashboard_link, listing_templates = driven["listing"]
    assert status == 200 and dashboard_link
    assert any(name.endswith("rail_django/admin/change_list.html") for name in listing_templates)
    assert any(name.endswith("admin/rail_django/auditeventmodel/pagination.html") for name in listing_templates)
    status, dashboard_templates = driven["dashboard"]
    assert status == 200
    assert any(name.endswith("rail_django/admin/dashboard.html") for name in dashboard_templates)
    for name in listing_templates + dashboard_templates:
        assert Path(name).resolve().is_relative_to(site_packages), name


def test_operations_commands_run_from_the_wheel(driven, venv_python, project):
    def manage(*args: str) -> subprocess.CompletedProcess:
        return _run([venv_python, "manage.py", *args], cwd=project, timeout=300)

    export = manage("audit_management", "export", "--format", "jsonl")
    assert export.returncode == 0, export.stderr
    lines = [json.loads(line) for line in export.stdout.splitlines() if line.strip()]
    assert {line["event_type"] for line in lines} - {"auth.account.created", "authz.role.assigned"} == {
        "auth.login.failure", "data.export", "auth.login.success"}

    summary = manage("audit_management", "summary", "--format", "json")
    assert summary.returncode == 0, summary.stderr
    counts = json.loads(summary.stdout)
    # The export recorded itself: a second data.export event.
    assert (counts["by_type"]["data.export"], counts["logins"]["failed"]) == (2, 1)
    stored = counts["total"]
    assert stored == len(lines) + 1

    cleanup = manage("audit_management", "cleanup", "--dry-run")
    assert cleanup.returncode == 0, cleanup.stderr
    assert _stored_count(project) == stored  # a dry run deletes nothing

    check = manage("security_check", "--format", "json")
    assert "Traceback" not in check.stdout + check.stderr, check.stderr
    document = json.loads(check.stdout[: check.stdout.rindex("}") + 1])
    assert check.returncode == (1 if document["counts"]["critical"] else 0), check.stderr
    crashed = [f for f in document["findings"] if f["id"].startswith("check.")]
    assert not crashed, crashed  # every check ran against the installed package


def _stored_count(project: Path) -> int:
    with sqlite3.connect(project / "db.sqlite3") as connection:
        return connection.execute("SELECT COUNT(*) FROM rail_django_auditeventmodel").fetchone()[0]
