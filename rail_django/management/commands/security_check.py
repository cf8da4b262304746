"""``manage.py security_check [--verbose] [--format text|json]``: is this deployment's audit trail sound?

Runs Django's ``check --deploy`` and rail-django's audit checks
(:mod:`rail_django.operations.deploy_checks`). Exits 0 when nothing is
critical, 1 otherwise. The JSON form is documented in ``docs/commands.md``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from django.core.management.base import CommandError, CommandParser

from rail_django.management.base import AuditCommand
from rail_django.operations.common import printable
from rail_django.operations.deploy_checks import SEVERITIES, Finding, run_security_checks


def report(findings: list[Finding]) -> dict[str, Any]:
    """The stable JSON document: ``status``, ``counts`` per severity and every finding."""
    counts = Counter(f.severity for f in findings)
    return {
        "status": "fail" if counts["critical"] else "pass",
        "counts": {severity: counts[severity] for severity in SEVERITIES},
        "findings": [f.to_dict() for f in findings],
    }


class Command(AuditCommand):
    help = "Check the deployment: Django's check --deploy plus audit logging, retention, alerts and GraphQL exposure."
    # Errors from the system checks are findings here, not a reason to refuse to run.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--verbose", action="store_true", help="Also list the checks that passed.")
        parser.add_argument("--format", choices=("text", "json"), default="text", help="Output format (default text).")

    def handle(self, *args: Any, **options: Any) -> None:
        findings = run_security_checks()
        document = report(findings)
        if options["format"] == "json":
            self.stdout.write(json.dumps(document, indent=2))
        else:
            self._text(findings, document, verbose=options["verbose"])
        critical = document["counts"]["critical"]
        if critical:
            raise CommandError(f"security_check found {critical} critical problem(s)", returncode=1)

    def _text(self, findings: list[Finding], document: dict[str, Any], *, verbose: bool) -> None:
        styles = {"critical": self.style.ERROR, "warning": self.style.WARNING, "info": self.style.NOTICE, "ok": self.style.SUCCESS}
        for finding in findings:
            if finding.severity == "ok" and not verbose:
                continue
            # Messages quote settings, exceptions and check output: escaped, so each stays one inert line.
            self.stdout.write(
                styles[finding.severity](f"{finding.severity.upper():<9}") + f"{printable(finding.id)}: {printable(finding.message)}"
            )
            if finding.hint and finding.severity != "ok":
                self.stdout.write(f"{'':<9}fix: {printable(finding.hint)}")
        counts = document["counts"]
        self.stdout.write(
            f"{document['status'].upper()}: {counts['critical']} critical, {counts['warning']} warning, "
            f"{counts['info']} info, {counts['ok']} ok"
        )
