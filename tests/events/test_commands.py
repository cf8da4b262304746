"""Management commands name themselves on the events they cause: real ``manage.py`` processes."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rail_django.capture.commands import command_from_argv

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "tests" / "events" / "manage.py"
PASSWORD = "Initial-passphrase-77"
NEW_PASSWORD = "Changed-passphrase-88"


@pytest.fixture
def project(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(PYTHONPATH=str(ROOT), RAIL_TEST_COMMAND_DB=str(tmp_path / "db.sqlite3"),
               RAIL_TEST_COMMAND_LOG=str(tmp_path / "audit.log"), RAIL_TEST_COMMAND_JOURNAL=str(tmp_path / "journal"))

    def manage(*args: str, stdin: str = "", extra_env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, str(MANAGE), *args], cwd=tmp_path, env={**env, **(extra_env or {})}, input=stdin,
            capture_output=True, text=True, timeout=120, start_new_session=True,  # no terminal: getpass reads stdin
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def events() -> list[dict]:
        log = tmp_path / "audit.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    manage("migrate", "--verbosity=0")
    manage.events = events
    manage.log = tmp_path / "audit.log"
    return manage


def test_createsuperuser_and_changepassword_name_the_command(project):
    project("createsuperuser", "--noinput", "--username", "boss", "--email", "boss@example.com",
            extra_env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD})
    created = project.events()
    assert [e["event_type"] for e in created] == ["auth.account.created", "authz.role.assigned", "authz.role.assigned"]
    assert all(e["context"]["command"] == "createsuperuser" for e in created)
    assert all(e["context"]["os_user"] == getpass.getuser() for e in created)
    assert len({e["correlation_id"] for e in created}) == 1  # one run, one correlation id
    assert [e["severity"] for e in created if e["context"].get("flag") == "is_superuser"] == ["critical"]

    project("changepassword", "boss", stdin=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    (changed,) = [e for e in project.events() if e["event_type"] == "auth.password.changed"]
    assert changed["context"]["command"] == "changepassword"
    assert changed["context"]["target_username"] == "boss" and changed["user_id"] is None
    assert changed["correlation_id"] != created[0]["correlation_id"]
    text = project.log.read_text()
    assert PASSWORD not in text and NEW_PASSWORD not in text and "md5$" not in text  # no password, no hash


def test_python_m_django_is_a_command_line_too(project, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(PYTHONPATH=str(ROOT), RAIL_TEST_COMMAND_DB=str(tmp_path / "db.sqlite3"),
               RAIL_TEST_COMMAND_LOG=str(tmp_path / "audit.log"), RAIL_TEST_COMMAND_JOURNAL=str(tmp_path / "journal"),
               DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    subprocess.run([sys.executable, "-m", "django", "createsuperuser", "--noinput", "--username", "ops",
                    "--email", "ops@example.com", "--settings", "tests.events.command_settings"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    assert {e["context"]["command"] for e in project.events()} == {"createsuperuser"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["manage.py", "changepassword", "boss"], "changepassword"),
        (["/srv/app/manage.py", "shell"], "shell"),
        (["/usr/bin/django-admin", "createsuperuser"], "createsuperuser"),
        (["/venv/lib/python3/site-packages/django/__main__.py", "migrate"], "migrate"),
        (["manage.py"], None),
        (["manage.py", "--help"], None),
        (["/usr/bin/gunicorn", "app.wsgi"], None),
        (["/venv/bin/pytest", "tests"], None),
        (["/venv/bin/celery", "-A", "proj", "worker"], None),
    ],
)
def test_which_processes_are_command_lines(argv, expected):
    assert command_from_argv(argv) == expected
