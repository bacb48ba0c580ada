"""Schedules: a periodic re-index of every source, in batched runs over partition ranges.

`build_schedule_from_partitioned_job` refuses dynamic partitions, so these schedules list the
partitions themselves and request one `index_sources` run per `SOURCES_PER_RUN` consecutive
partitions (200 runs at 5,000 sources, not 5,000).

* `nightly_reindex` (running by default, 03:00 UTC): a normal run. Every source's head is checked
  over the git protocol; sources whose head moved, whose configuration changed, or that were never
  indexed or failed are indexed; the others are recorded current (no clone, no REST call). It is
  the safety net for pushes the sensors missed (lookup failures, a stopped daemon, a lost webhook).
* `weekly_forced_reindex` (stopped by default, Sunday 04:00 UTC): `force: true`, every source is
  cloned and extracted again although its head did not move. Turn it on, or launch it once by
  hand, after a change of the detection or extraction rules; otherwise it only costs clones.
"""

from datetime import datetime

import dagster as dg

# the job through its module: imported by name, the loader would collect it here a second time
from skillmeat_pipeline.defs.index import jobs
from skillmeat_pipeline.defs.index.jobs import range_run_requests
from skillmeat_pipeline.defs.index.partitions import marketplace_sources

NIGHTLY_CRON = "0 3 * * *"
WEEKLY_FORCED_CRON = "0 4 * * 0"
FORCE_RUN_CONFIG = {
    "ops": {"marketplace_index": {"ops": {"resolve_heads": {"config": {"force": True}}}}}
}


def reindex_requests(
    instance: dg.DagsterInstance, scheduled: datetime, name: str, *, force: bool
) -> list[dg.RunRequest] | dg.SkipReason:
    """Every partition, in batched range runs; run keys name the tick so a retry adds none."""
    keys = marketplace_sources.get_partition_keys(dynamic_partitions_store=instance)
    if not keys:
        return dg.SkipReason("no marketplace sources: add some to the sources file")
    return range_run_requests(
        keys,
        f"{name}:{scheduled:%Y-%m-%dT%H:%M}",
        run_config=FORCE_RUN_CONFIG if force else None,
        tags={"skillmeat/trigger": name},
    )


@dg.schedule(
    name="nightly_reindex",
    cron_schedule=NIGHTLY_CRON,
    job=jobs.index_sources_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-checks every source's head and indexes the ones that are behind, in batches.",
)
def nightly_reindex(context: dg.ScheduleEvaluationContext):
    return reindex_requests(
        context.instance, context.scheduled_execution_time, "nightly_reindex", force=False
    )


@dg.schedule(
    name="weekly_forced_reindex",
    cron_schedule=WEEKLY_FORCED_CRON,
    job=jobs.index_sources_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Clones and extracts every source again (force), e.g. after a rules change.",
)
def weekly_forced_reindex(context: dg.ScheduleEvaluationContext):
    return reindex_requests(
        context.instance, context.scheduled_execution_time, "weekly_forced_reindex", force=True
    )
