"""The :class:`Finding` value and the list of checks ``security_check`` runs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

logger = logging.getLogger("rail_django.audit")

#: Severities, least to most urgent.
SEVERITIES = ("ok", "info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """One result of ``security_check``."""

    id: str
    severity: str
    message: str
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity)


Check = Callable[[], list[Finding]]


def _checks() -> list[Check]:
    from rail_django.operations.deploy_checks import audit_checks, site_checks

    return [*site_checks.CHECKS, *audit_checks.CHECKS]


def run_security_checks() -> list[Finding]:
    """Every finding, most urgent first (then by id). A check that crashes becomes a warning finding."""
    findings: list[Finding] = []
    for check in _checks():
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
