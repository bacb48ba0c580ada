"""Asset checks of `marketplace_index`, evaluated per partition by the op that writes the rows."""

from dataclasses import dataclass
from typing import Any

import dagster as dg

from skillmeat_pipeline.defs.index.partitions import marketplace_sources
from skillmeat_pipeline.lib.catalog.records import SourceFinding
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.findings import RiskCounts, Severity
from skillmeat_pipeline.lib.core.untrusted import printable
from skillmeat_pipeline.lib.fetch.github.client import DEFAULT_CALL_BUDGET
from skillmeat_pipeline.lib.scan.outcomes import Current, Scanned, Superseded, count_collapsed

INDEX_ASSET_KEY = dg.AssetKey("marketplace_index")

# Partitioned check specs are a preview in Dagster 1.13 (pinned below 1.14); they give every
# source its own check history, which is what a user looks at after a backfill.

API_CALLS_WITHIN_BUDGET = dg.AssetCheckSpec(
    "api_calls_within_budget",
    asset=INDEX_ASSET_KEY,
    partitions_def=marketplace_sources,
    description=f"A scan spent at most {DEFAULT_CALL_BUDGET} GitHub REST calls (SPEC §6.2).",
)
ARTIFACT_COUNT_STABLE = dg.AssetCheckSpec(
    "artifact_count_stable",
    asset=INDEX_ASSET_KEY,
    partitions_def=marketplace_sources,
    description="The artifact count did not drop by more than half while the tree did not shrink.",
)
NO_HIGH_RISK_ARTIFACTS = dg.AssetCheckSpec(
    "no_high_risk_artifacts",
    asset=INDEX_ASSET_KEY,
    partitions_def=marketplace_sources,
    description=(
        "No artifact has a high-severity security finding (remote code run, exfiltration, live "
        "secrets, destructive commands, hidden instructions; SPEC §5.5)."
    ),
)
INDEX_CHECK_SPECS = [API_CALLS_WITHIN_BUDGET, ARTIFACT_COUNT_STABLE, NO_HIGH_RISK_ARTIFACTS]
# the check's metadata shows this many high findings; `skillmeat-pipeline findings` lists all
MAX_FINDINGS_IN_METADATA = 20


def check_evaluations(result: Current | Scanned | Superseded) -> list[dg.AssetCheckEvaluation]:
    """Both checks for one source's scan, as events of its partition."""
    api_calls = result.cost.api_calls
    previous = result.previous_target
    current = result.target
    collapsed = count_collapsed(previous, current)
    return [
        dg.AssetCheckEvaluation(
            asset_key=INDEX_ASSET_KEY,
            check_name=API_CALLS_WITHIN_BUDGET.name,
            partition=result.source_key,
            passed=api_calls <= DEFAULT_CALL_BUDGET,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"api_calls": api_calls, "budget": DEFAULT_CALL_BUDGET},
        ),
        dg.AssetCheckEvaluation(
            asset_key=INDEX_ASSET_KEY,
            check_name=ARTIFACT_COUNT_STABLE.name,
            partition=result.source_key,
            passed=not collapsed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "artifact_count": current.artifact_count if current else 0,
                "previous_artifact_count": previous.artifact_count if previous else 0,
                "tree_entry_count": (current.tree_entry_count or 0) if current else 0,
                "previous_tree_entry_count": (previous.tree_entry_count or 0) if previous else 0,
            },
            description=(
                "artifact count dropped by more than half while the tree did not shrink"
                if collapsed
                else None
            ),
        ),
    ]


@dataclass(frozen=True, slots=True)
class SourceRisk:
    """A source's artifacts by risk and its high findings, after its run."""

    counts: RiskCounts
    high: list[SourceFinding]

    def metadata(self) -> dict[str, int]:
        """Numeric partition metadata, so the UI plots them."""
        return {"high_risk_count": self.counts.high, "medium_risk_count": self.counts.medium}


def source_risk(catalog: Catalog, result: Current | Scanned | Superseded) -> SourceRisk:
    """From the scanned entries, or from the catalog when what it stores stays (a current source,
    or a superseded run: the newer scan's rows are the catalog's)."""
    key = result.source_key
    if not isinstance(result, Scanned):
        counts = catalog.risk_counts([key])[key]
        return SourceRisk(counts, catalog.findings(source_key=key, min_severity=Severity.HIGH))
    high = [
        SourceFinding(key, entry.artifact_type, entry.path, entry.name, finding)
        for entry in result.entries
        for finding in entry.findings or ()
        if finding.severity is Severity.HIGH
    ]
    high.sort(key=lambda f: (f.path, f.artifact_type.value, f.finding.file, f.finding.line))
    return SourceRisk(RiskCounts.of(entry.risk for entry in result.entries), high)


def no_high_risk_evaluation(source_key: str, risk: SourceRisk) -> dg.AssetCheckEvaluation:
    """WARN when an artifact of the source has a high finding; the first ones as metadata."""
    shown: list[dict[str, Any]] = [
        {
            "artifact": f"{f.artifact_type.value}:{printable(f.path)}",
            "rule": f.finding.rule,
            "file": printable(f.finding.file),
            "line": f.finding.line,
            "excerpt": f.finding.excerpt,  # secrets masked, control characters escaped
            "message": f.finding.message,
        }
        for f in risk.high[:MAX_FINDINGS_IN_METADATA]
    ]
    rules = sorted({f.finding.rule for f in risk.high})
    return dg.AssetCheckEvaluation(
        asset_key=INDEX_ASSET_KEY,
        check_name=NO_HIGH_RISK_ARTIFACTS.name,
        partition=source_key,
        passed=risk.counts.high == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "high_risk_count": risk.counts.high,
            "high_finding_count": len(risk.high),
            "rules": dg.MetadataValue.text(", ".join(rules) or "none"),
            "findings": dg.MetadataValue.json(shown),
        },
        description=(
            f"{risk.counts.high} artifact(s) with high-severity findings ({', '.join(rules)}); "
            f"`skillmeat-pipeline findings --source {source_key} --severity high` lists them"
            if risk.counts.high
            else None
        ),
    )
