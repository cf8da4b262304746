"""``benchmarks/tracking.py`` must never rot: a smoke run with tiny counts, as a user runs it.

Asserts the report's shape and what each variant stored, never a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.sqlite_only, pytest.mark.slow]


def test_tracking_benchmark_smoke_run(tmp_path):
    completed = subprocess.run(
        [sys.executable, "benchmarks/tracking.py", "--smoke", "--bulk-rows", "200", "--variants", "untracked,rail,rail-drain",
         "--json", str(tmp_path / "report.json"), "--work-dir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    sqlite = report["backends"]["sqlite"]
    assert sqlite["variants"] == ["untracked", "rail", "rail-drain"]
    for scenario in ("save_request", "bulk_update_10k"):
        by_variant = sqlite["results"][scenario]
        assert by_variant["untracked"]["rows_per_op"] == 0  # nothing tracked: no change event
        for variant in ("rail", "rail-drain"):  # rail-drain: stored by the drain process before flush() returns
            assert by_variant[variant]["rows_per_op"] == 1  # one event per save, one per update() call
            assert all(s > 0 for s in by_variant[variant]["seconds"])
    assert "| update of 3 fields through save() in a request | rail |" in completed.stdout
