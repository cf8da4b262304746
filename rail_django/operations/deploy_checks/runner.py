"""The list of checks ``security_check`` runs, and running them.

Kept apart from :mod:`.findings` so the check modules import the
:class:`~.findings.Finding` value without importing back the module that
lists them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rail_django.operations.deploy_checks import audit_checks, site_checks
from rail_django.operations.deploy_checks.findings import Finding

logger = logging.getLogger("rail_django.audit")

Check = Callable[[], list[Finding]]

CHECKS: tuple[Check, ...] = (*site_checks.CHECKS, *audit_checks.CHECKS)


def run_security_checks() -> list[Finding]:
    """Every finding, most urgent first (then by id). A check that crashes becomes a warning finding."""
    findings: list[Finding] = []
    for check in CHECKS:
        try:
            findings.extend(check())
        except Exception as exc:  # one broken check must not hide the others
            logger.exception("security_check: %s failed", check.__name__)
            findings.append(
                Finding(
                    f"check.{check.__name__.removeprefix('check_')}",
                    "warning",
                    f"The check could not run ({type(exc).__name__}: {exc}).",
                    "Fix the error above and run security_check again.",
                )
            )
    return sorted(findings, key=lambda f: (-f.rank, f.id))
