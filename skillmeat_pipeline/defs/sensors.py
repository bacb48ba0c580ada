"""Sensors: keep the partitions equal to the sources file."""

import dagster as dg

from skillmeat_pipeline.defs.assets import SOURCES_PER_RUN
from skillmeat_pipeline.defs.jobs import index_sources_job
from skillmeat_pipeline.defs.partitions import (
    marketplace_sources,
    planned_partition_changes,
    sync_catalog_sources,
)
from skillmeat_pipeline.defs.resources import CatalogResource, SourcesFileResource


def batched_run_requests(keys: list[str], run_key_prefix: str) -> list[dg.RunRequest]:
    """One run per `SOURCES_PER_RUN` consecutive partitions, as a partition range.

    `keys` must be consecutive in the partition order (new keys are: they are appended).
    """
    requests = []
    for start in range(0, len(keys), SOURCES_PER_RUN):
        chunk = keys[start : start + SOURCES_PER_RUN]
        requests.append(
            dg.RunRequest(
                run_key=f"{run_key_prefix}:{chunk[0]}..{chunk[-1]}",
                tags={
                    "dagster/asset_partition_range_start": chunk[0],
                    "dagster/asset_partition_range_end": chunk[-1],
                },
            )
        )
    return requests


@dg.sensor(
    job=index_sources_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds partitions for new sources (and indexes them), removes dropped ones.",
)
def sources_sync_sensor(
    context: dg.SensorEvaluationContext,
    sources_file: SourcesFileResource,
    catalog: CatalogResource,
) -> dg.SensorResult | dg.SkipReason:
    # A malformed file raises here: the tick fails with the source and field, nothing changes.
    configured = sources_file.load()
    added, removed = planned_partition_changes(context.instance, configured)
    sync_catalog_sources(catalog.catalog, configured)
    if not added and not removed:
        return dg.SkipReason(f"partitions equal the sources file ({len(configured)} sources)")
    context.log.info(f"sources file: {len(added)} new, {len(removed)} removed")
    requests = []
    if added:
        requests.append(marketplace_sources.build_add_request(added))
    if removed:
        requests.append(marketplace_sources.build_delete_request(removed))
    return dg.SensorResult(
        dynamic_partitions_requests=requests,
        run_requests=batched_run_requests(added, f"new-sources:{context.cursor or 0}"),
        cursor=str(int(context.cursor or 0) + 1),
    )
