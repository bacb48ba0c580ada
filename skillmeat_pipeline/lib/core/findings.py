"""Security findings (SPEC §5.5) as catalog entries carry them: one `Finding` per rule, file and
line, the `Severity` scale and an artifact's `risk`.

The shapes live in core so that the catalog, the CLI and the Dagster layer can read them; the rules
that produce them are in `lib/trust`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """SPEC §5.5: high > medium > low."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def at_least(cls, minimum: Severity) -> list[Severity]:
        """`minimum` and every severity above it, highest first."""
        return [s for s in SEVERITIES if s.rank >= minimum.rank]

    @classmethod
    def at_most(cls, maximum: Severity) -> list[Severity]:
        """`maximum` and every severity below it, highest first."""
        return [s for s in SEVERITIES if s.rank <= maximum.rank]


_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}
SEVERITIES = (Severity.HIGH, Severity.MEDIUM, Severity.LOW)  # highest first


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that matched one line of one file.

    `file` is relative to the repository root, `line` is 1-based, `excerpt` is at most 160
    characters of that line with control characters escaped and any secret cut to its first 4
    characters.
    """

    rule: str
    severity: Severity
    file: str
    line: int
    excerpt: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape stored on a catalog entry (`severity` as its string value)."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


def risk_of(findings: Iterable[Finding]) -> Severity | None:
    """The highest severity among `findings`, or None when there are none."""
    best: Severity | None = None
    for finding in findings:
        if best is None or finding.severity.rank > best.rank:
            best = finding.severity
            if best is Severity.HIGH:
                break
    return best


@dataclass(frozen=True, slots=True)
class RiskCounts:
    """How many artifacts of a source have each risk (artifacts without findings not counted)."""

    high: int = 0
    medium: int = 0
    low: int = 0

    @classmethod
    def of(cls, risks: Iterable[Severity | None]) -> RiskCounts:
        counts = dict.fromkeys(SEVERITIES, 0)
        for risk in risks:
            if risk is not None:
                counts[risk] += 1
        return cls(counts[Severity.HIGH], counts[Severity.MEDIUM], counts[Severity.LOW])

    def to_dict(self) -> dict[str, int]:
        return {"high": self.high, "medium": self.medium, "low": self.low}
