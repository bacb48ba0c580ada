"""The catalog-wide view downstream of `marketplace_index`: duplicate clusters, totals, export.

marketplace_index (one partition a source) -> catalog_duplicates -> catalog_summary
                                                                -> catalog_export

Unpartitioned: each looks at the whole catalog. They refresh by declarative automation at most
once per 10-minute tick, and only after index runs updated something since they last ran and
no index run or backfill is still going: a burst of runs (a backfill, a push storm) gives one
refresh after it ends, within 10 minutes, not one per partition. Materializing by hand works too.
The work itself is in lib/catalog (duplicates, summary, export).
"""

from typing import Any

import dagster as dg

from skillmeat_pipeline.defs.index.checks import INDEX_ASSET_KEY
from skillmeat_pipeline.defs.resources import CatalogResource, ExportLocationResource
from skillmeat_pipeline.lib.catalog.duplicates import refresh_duplicates
from skillmeat_pipeline.lib.catalog.export import write_export
from skillmeat_pipeline.lib.catalog.summary import summarize_catalog

REFRESH_CRON = "*/10 * * * *"

# `eager()` would refresh after every partition's run; this waits for a tick and for the burst.
CATALOG_REFRESH = (
    dg.AutomationCondition.cron_tick_passed(REFRESH_CRON).since_last_handled()
    & dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("index runs finished since the last refresh, at a 10-minute tick")

DUPLICATES_KEY = dg.AssetKey("catalog_duplicates")


@dg.asset(
    deps=[INDEX_ASSET_KEY],
    automation_condition=CATALOG_REFRESH,
    group_name="catalog",
    kinds={"python", "sql"},
    description="Duplicate clusters across sources: `duplicate_of` and `copies` on every live row.",
)
def catalog_duplicates(catalog: CatalogResource) -> dg.MaterializeResult:
    stats = refresh_duplicates(catalog.catalog)
    return dg.MaterializeResult(
        metadata={
            "live_rows": stats.live_rows,
            "clusters": stats.clusters,
            "duplicate_rows": stats.duplicate_rows,
            "duplicate_share": float(round(stats.duplicate_share, 4)),
            "largest_cluster": stats.largest_cluster,
            "rows_written": stats.rows_written,
        }
    )


@dg.asset(
    deps=[DUPLICATES_KEY],
    automation_condition=CATALOG_REFRESH,
    group_name="catalog",
    kinds={"python", "sql"},
    description="Catalog-wide totals: artifacts by kind, quality band and risk; sources by status.",
)
def catalog_summary(catalog: CatalogResource) -> dg.MaterializeResult:
    summary = summarize_catalog(catalog.catalog)
    metadata: dict[str, Any] = {
        "artifacts": summary.artifacts,
        "sources": summary.sources,
        "duplicate_rows": summary.duplicate_rows,
        **{f"kind_{kind}": count for kind, count in summary.by_kind.items()},
        **{f"quality_{band}": count for band, count in summary.by_quality_band.items()},
        **{f"sources_{status}": count for status, count in summary.sources_by_status.items()},
    }
    if summary.by_risk is not None:
        metadata.update({f"risk_{risk}": count for risk, count in summary.by_risk.items()})
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    deps=[DUPLICATES_KEY],
    automation_condition=CATALOG_REFRESH,
    group_name="catalog",
    kinds={"python", "json"},
    description="A versioned JSON Lines (gzip) snapshot of the live catalog (README: Export).",
)
def catalog_export(
    catalog: CatalogResource, export_location: ExportLocationResource
) -> dg.MaterializeResult:
    result = write_export(catalog.catalog, export_location.path(), keep=export_location.keep)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "bytes": result.bytes,
            "sha256": result.sha256,
            "schema_version": result.schema_version,
            "path": dg.MetadataValue.path(str(result.path)),
        }
    )


CATALOG_ASSETS = [catalog_duplicates, catalog_summary, catalog_export]

catalog_automation = dg.AutomationConditionSensorDefinition(
    "catalog_automation",
    target=dg.AssetSelection.assets(*CATALOG_ASSETS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Evaluates the catalog assets' automation conditions (a refresh after index runs).",
)
