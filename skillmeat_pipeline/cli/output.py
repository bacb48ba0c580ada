"""Plain-text output shared by the commands: tables, risk labels, one-line errors."""

import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from skillmeat_pipeline.lib.core.findings import SEVERITIES, RiskCounts, Severity
from skillmeat_pipeline.lib.core.models import CatalogEntry
from skillmeat_pipeline.lib.core.untrusted import printable


def format_rows(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 70) -> str:
    """A plain text table: one header line, one line per row, columns padded.

    Cells hold names, paths and descriptions from repositories: control characters are escaped,
    so a cell is one line and cannot drive the terminal.
    """
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [
        min(max_width, max([len(h)] + [len(r[i]) for r in rows])) for i, h in enumerate(headers)
    ]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    )


def one_line(text: str | None) -> str:
    """`text` with its newlines and runs of white space as one space: a description in a table
    row (`format_rows` escapes the control characters that are left)."""
    return " ".join((text or "").split())


def format_entries(entries: Sequence[CatalogEntry]) -> str:
    """Catalog entries as a table, plus a per-kind summary line."""
    rows = [
        (
            e.artifact_type.value,
            printable(e.name),
            printable(e.path),
            str(e.confidence),
            str(len(e.problems)),
            risk_label(e.risk),
        )
        for e in entries
    ]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.artifact_type.value] = counts.get(e.artifact_type.value, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no artifacts"
    table = format_rows(("TYPE", "NAME", "PATH", "CONF", "PROBLEMS", "RISK"), rows)
    return f"{table}\n{len(entries)} artifacts: {summary}"


def risk_label(risk: Severity | None) -> str:
    return risk.value if risk else "-"


def format_risk_counts(counts: RiskCounts) -> str:
    """`2 high, 1 low`: the artifacts of a source at each risk; `-` when none has a finding."""
    parts = [f"{n} {s.value}" for s in SEVERITIES if (n := getattr(counts, s.value))]
    return ", ".join(parts) or "-"


def fail(message: str) -> NoReturn:
    click.echo(f"error: {printable(message)}", err=True)
    sys.exit(2)
