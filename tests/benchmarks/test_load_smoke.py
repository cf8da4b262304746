"""``benchmarks/load.py`` (``make bench``'s load section) must never rot: a tiny run, as ``make bench`` runs it.

gunicorn really serves the benchmark project on loopback, the client sends normal
traffic and a burst of failed logins from several X-Forwarded-For addresses, and
the scenario's own checks (every login event stored, one alert per key) must
all hold. No timing is asserted: the figures only have to be measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_server

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.sqlite_only, pytest.mark.slow]


@pytest.fixture(scope="module")
def load_report(tmp_path_factory):
    require_server("Redis", "127.0.0.1", 6379)
    pytest.importorskip("gunicorn", reason="gunicorn is in the test and bench extras: pip install -e .[test]")
    work = tmp_path_factory.mktemp("load")
    completed = subprocess.run(
        [sys.executable, "benchmarks/load.py", "--smoke", "--json", str(work / "load.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "BENCH_WORK_DIR": str(work)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads((work / "load.json").read_text()), completed.stdout


def test_every_variant_answers_every_request_of_both_phases(load_report):
    report, _ = load_report
    assert report["meta"]["variants"] == ["bare", "rail", "rail-drain"]
    for variant in ("bare", "rail", "rail-drain"):
        phases = report["summary"][variant]["phases"]
        assert phases["normal"]["requests"] > 0 and phases["burst: failed logins"]["requests"] > 0
        for name, figures in phases.items():
            assert figures["errors"] == 0, (variant, name)
            assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"], (variant, name)
            assert figures["throughput_per_s"] > 0


@pytest.mark.parametrize("variant", ["rail", "rail-drain"])
def test_rail_django_stores_every_login_and_alerts_once_per_key(load_report, variant):
    # rail-drain: the requests only append to the journal; the drain beside gunicorn (then
    # `drain --once`) must have stored every event before the checks count them.
    report, stdout = load_report
    checks = {c["check"]: c for c in report["summary"][variant]["checks"]}
    assert len(checks) == 5
    assert all(c["ok"] for c in checks.values()), checks
    alerts = next(c for name, c in checks.items() if name.startswith("security.alert keys"))
    assert alerts["found"] > 0  # the smoke burst does cross the thresholds
    assert "## Load scenario" in stdout and f"| {variant} |" in stdout
