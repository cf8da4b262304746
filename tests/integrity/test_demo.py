"""The sample project's ``demo_setup`` with a tamper-evidence key: its seeded hour verifies, and it never back-dates."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.sample_project.conftest import PASSWORD, SAMPLE_DIR, sample_env

pytestmark = [pytest.mark.sqlite_only, pytest.mark.slow]


def _manage(data_dir, settings_dir, *args: str) -> subprocess.CompletedProcess:
    env = sample_env(data_dir, debug=False)
    env.update(PYTHONPATH=str(settings_dir), DJANGO_SETTINGS_MODULE="keyed_sample_settings")
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=SAMPLE_DIR, env=env,
        capture_output=True, text=True, timeout=300,
    )


def test_demo_setup_with_a_key_seeds_history_that_verifies_and_never_back_dates(tmp_path):
    settings_dir = tmp_path / "settings"
    settings_dir.mkdir()
    (settings_dir / "keyed_sample_settings.py").write_text(
        "from sample_site.settings import *  # noqa\nAUDIT_INTEGRITY_KEY = 'sample-integrity-key-0123456789'\n"
    )
    data = tmp_path / "data"
    data.mkdir()
    assert _manage(data, settings_dir, "migrate", "--noinput").returncode == 0
    setup = _manage(data, settings_dir, "demo_setup", "--password", PASSWORD)
    assert setup.returncode == 0, setup.stderr
    assert "Seeded " in setup.stdout
    verify = _manage(data, settings_dir, "audit_management", "verify")
    assert verify.returncode == 0, verify.stderr  # was: out_of_order at sequence 12
    assert verify.stdout.startswith("Integrity chain OK: ")

    again = _manage(data, settings_dir, "demo_setup", "--password", PASSWORD, "--reseed")
    assert again.returncode == 0, again.stderr
    assert "Not seeding: the integrity chain holds events newer than the hour to seed" in again.stdout
    assert _manage(data, settings_dir, "audit_management", "verify").returncode == 0
