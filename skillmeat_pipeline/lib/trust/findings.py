"""What the trust rules report: one `Finding` per rule, file and line, and the `Severity` scale."""

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


_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}


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
