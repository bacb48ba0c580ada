"""Asset checks of `marketplace_index`, evaluated per partition by the op that writes the rows."""

import dagster as dg

from skillmeat_pipeline.defs.index.partitions import marketplace_sources
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
INDEX_CHECK_SPECS = [API_CALLS_WITHIN_BUDGET, ARTIFACT_COUNT_STABLE]


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
