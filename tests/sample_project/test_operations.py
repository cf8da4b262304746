"""The operations commands of ``docs/audit-logging.md``, verbatim, against the sample project; and a brute force."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import requests

from tests.sample_project.conftest import PASSWORD, SAMPLE_DIR, login, manage, sample_env

pytestmark = [pytest.mark.sqlite_only, pytest.mark.slow]


def _run(data_dir, command: str, **env: str) -> subprocess.CompletedProcess:
    """``command`` as the page writes it (``python manage.py ...``), run from the data folder."""
    words = command.split()
    assert words[:2] == ["python", "manage.py"]
    return subprocess.run(
        [sys.executable, str(SAMPLE_DIR / "manage.py"), *words[2:]], cwd=data_dir,
        env={**sample_env(data_dir, debug=False), **env}, capture_output=True, text=True, timeout=300,
    )


def test_the_documented_command_lines_work_verbatim(tmp_path):
    manage(tmp_path, "migrate", "--noinput", debug=False)
    manage(tmp_path, "demo_setup", "--password", PASSWORD, debug=False)

    export = _run(tmp_path, "python manage.py audit_management export --format json --days 30 --output audit.json")
    assert export.returncode == 0, export.stderr
    rows = json.loads((tmp_path / "audit.json").read_text())
    assert export.stdout.strip() == f"Exported {len(rows)} events as json to audit.json"
    assert {"auth.login.failure", "security.alert", "data.update"} <= {row["event_type"] for row in rows}

    cleanup = _run(tmp_path, "python manage.py audit_management cleanup --days 180 --dry-run")
    assert cleanup.returncode == 0, cleanup.stderr
    assert cleanup.stdout.startswith("Dry run: 0 events older than 180 days")

    summary = _run(tmp_path, "python manage.py audit_management summary --hours 24")
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout.startswith("Audit events in the last 24 h (since ")
    assert f": {len(rows) + 1}\n" in summary.stdout  # the export recorded its own data.export event
    assert "Alerts raised: 2" in summary.stdout

    # The sample's built-in SECRET_KEY is public: critical until a deployment sets its own.
    check = _run(tmp_path, "python manage.py security_check --verbose")
    assert check.returncode == 1, check.stdout + check.stderr
    assert "CRITICAL django.secret_key: SECRET_KEY is a published sample or placeholder value" in check.stdout
    check = _run(tmp_path, "python manage.py security_check --verbose",
                 SAMPLE_SECRET_KEY="r8ii_0tzjjwr(ugu5#_-meye)qj$&#dz-2ipyu-xq*izw4b_-6")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK       audit.database:" in check.stdout and check.stdout.strip().splitlines()[-1].startswith("PASS: ")


def test_a_brute_force_raises_exactly_one_alert_per_window(sample_server):
    target = f"intruder-{uuid.uuid4().hex[:12]}"
    # No such user: the name is stored as its keyed hash (AUDIT_ATTEMPTED_USERNAME = "known"), asked of the project.
    stored = manage(sample_server.data_dir, "shell", "-c",
                    f"from rail_django.capture.auth import username_hash; print(username_hash({target!r}))").stdout.split()[-1]
    assert stored.startswith("hash:")
    session = requests.Session()
    for _ in range(12):  # failed_logins_per_user is 5: one alert, not eight
        assert login(session, sample_server, target, "guess-" + uuid.uuid4().hex).status_code == 200
    failures = sample_server.wait_for_events(
        "event_type = 'auth.login.failure' AND json_extract(additional_data, '$.context.username_attempted') = ?",
        (stored,), count=12,
    )
    assert len(failures) == 12
    alerts = sample_server.wait_for_events(
        "event_type = 'security.alert' AND json_extract(additional_data, '$.context.key') = ?", (stored,), count=1,
    )
    assert len(alerts) == 1
    assert alerts[0]["additional_data"]["context"]["rule"] == "failed_logins_per_user"
    assert alerts[0]["additional_data"]["context"]["count"] == 5
    assert alerts[0]["severity"] == "critical"
