"""The reliability suites' report: one row per fault (and per fuzz run), printed after the tests and written to a file.

``fault_report(fault, emitted=..., stored=..., failed_requests=...)`` records one row. At the end of the run the
rows are printed as a table ("lost" = emitted - stored) and written to ``<TEST_OUTPUT>/reliability-report.md``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

_ROWS: list[dict] = []


@pytest.fixture
def fault_report():
    """``fault_report(fault, emitted=, stored=, failed_requests=, note="")``: one row of the report."""

    def record(fault: str, *, emitted: int, stored: int, failed_requests: int, note: str = "") -> None:
        backend = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        _ROWS.append({
            "fault": fault, "backend": backend, "emitted": emitted, "stored": stored,
            "lost": emitted - stored, "failed_requests": failed_requests, "note": note,
        })

    return record


def _table() -> list[str]:
    lines = [
        "| fault | backend | events emitted | events stored | lost | requests failed | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in _ROWS:
        lines.append(
            f"| {row['fault']} | {row['backend']} | {row['emitted']} | {row['stored']} | {row['lost']} "
            f"| {row['failed_requests']} | {row['note']} |"
        )
    return lines


@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    lines = _table()
    terminalreporter.section("reliability report")
    for line in lines:
        terminalreporter.write_line(line)
    path = Path(settings.TEST_OUTPUT) / "reliability-report.md"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        terminalreporter.write_line(f"(written to {path})")
    except OSError as exc:
        terminalreporter.write_line(f"(could not write {path}: {exc})")
