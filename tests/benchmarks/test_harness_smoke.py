"""``make bench`` must never rot: a smoke run of the benchmark harness with tiny counts.

The harness is run as a user runs it (``benchmarks/run.py`` in a subprocess,
each variant in its own processes); the test checks the report is complete
and well formed and that every audited request was stored. It asserts no
timing: figures only have to be measured (positive), never fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.sqlite_only, pytest.mark.slow]


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--smoke", "--json", str(work / "report.json"),
         "--markdown", str(work / "report.md"), "--work-dir", str(work / "scratch")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads((work / "report.json").read_text()), (work / "report.md").read_text(), completed.stdout


def test_every_request_scenario_is_measured_for_every_variant(smoke_report):
    from benchmarks.requests_worker import SCENARIOS

    report, _, _ = smoke_report
    assert report["meta"]["variants"] == ["bare", "rail", "rail-sync"]
    for scenario in SCENARIOS:
        variants = report["requests"][scenario.name]["variants"]
        assert set(variants) == {"bare", "rail", "rail-sync"}, scenario.name
        for name, entry in variants.items():
            assert 0 < entry["min_us"] <= entry["median_us"] <= entry["max_us"], (scenario.name, name)
            assert entry["requests"] > 0
            if name != "bare":
                assert entry["ratio"] > 0 and entry["ratio_min"] <= entry["ratio"] <= entry["ratio_max"]


def test_rail_django_stores_one_row_per_audited_request_and_none_for_the_rest(smoke_report):
    report, _, _ = smoke_report
    for variant in ("rail", "rail-sync"):
        rows = {name: data["variants"][variant] for name, data in report["requests"].items()}
        for audited in ("login_failed", "login_success", "emit", "graphql_mutation"):
            # login_failed may add the security.alert of the failed-login threshold.
            assert rows[audited]["rows_added"] >= rows[audited]["requests"], (variant, audited)
            assert rows[audited]["rows_added"] <= rows[audited]["requests"] + 2, (variant, audited)
        for silent in ("anon_get", "auth_get", "graphql_query_1000x5"):
            assert rows[silent]["rows_added"] == 0, (variant, silent)


def test_throughput_tasks_store_and_remove_exactly_what_they_should(smoke_report):
    report, _, _ = smoke_report
    tasks = {(r["task"], r.get("async"), r.get("format"), r.get("delivery")): r for r in report["throughput"]}
    for async_on, delivery in ((True, "thread"), (False, "thread"), (True, "drain")):
        emit = tasks[("emit", async_on, None, delivery)]
        assert emit["stored"] == emit["count"] > 0 and emit["events_per_s"] > 0
    for fmt in ("jsonl", "csv"):
        export = tasks[("export", None, fmt, None)]
        assert export["rows"] == 500 and export["rows_per_s"] > 0 and export["bytes"] > 0
        assert export["rss_peak_mib"] >= export["rss_before_mib"] > 0
    assert tasks[("summary", None, None, None)]["seconds"] > 0
    cleanup = tasks[("cleanup", None, None, None)]
    assert cleanup["rows_left"] == cleanup["expected_left"]


def test_markdown_report_has_the_targets_and_tables(smoke_report):
    report, markdown, stdout = smoke_report
    assert markdown in stdout
    for heading in ("## Run", "## Targets", "## Request overhead", "## Throughput"):
        assert heading in markdown
    assert report["meta"]["command"].startswith("python benchmarks/run.py --smoke")
    section = markdown.split("## Targets", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| target")]
    assert len(rows) == len(report["targets"]) >= 9
    for row, target in zip(rows, report["targets"], strict=True):
        assert row.startswith(f"| {target['target']} | {target['goal']} |")
    measured = {t["target"].split(" (")[0] for t in report["targets"] if t["met"] is not None}
    assert {"anon_get", "auth_get", "login_failed", "graphql_query_1000x5"} <= measured
