"""The :class:`Finding` value every check returns (imported by the check modules, importing none of them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
