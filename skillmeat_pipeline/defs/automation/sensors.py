"""Sensors: keep the partitions equal to the sources file, and index sources that were pushed to.

* `sources_sync_sensor` (running by default): partitions follow the sources file and the plugin
  sources its indexed marketplaces list (SPEC §2.1); new sources are indexed at once (partition
  ranges: new keys are appended, so they are consecutive).
* `source_heads_sensor` (running by default): polls heads over the git protocol, one page of
  sources a tick, and indexes the sources whose head moved away from the indexed commit, and
  those never indexed (partitions synced while the daemon was down) unless their first run is
  already in progress.
* `push_events_sensor` (running by default; idle until `skillmeat-pipeline webhook-server`
  stores events): indexes the sources of pending GitHub push deliveries.

Pushes reach scattered partitions, so both push sensors request `index_source_batch` runs with
the sources in run config, `SOURCES_PER_RUN` a run, never one run per source.
"""

import json
import time

import dagster as dg

# the jobs through their module: imported by name, the loader would collect them here again
from skillmeat_pipeline.defs.index import jobs
from skillmeat_pipeline.defs.index.checks import INDEX_ASSET_KEY
from skillmeat_pipeline.defs.index.jobs import batch_run_requests, range_run_requests
from skillmeat_pipeline.defs.index.partitions import (
    marketplace_sources,
    planned_partition_changes,
    sync_catalog_sources,
)
from skillmeat_pipeline.defs.resources import (
    CatalogResource,
    HeadPollingResource,
    SourcesFileResource,
)
from skillmeat_pipeline.lib.catalog.source_set import source_set
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.plugin_sources import PluginSourceConfig
from skillmeat_pipeline.lib.fetch.git.heads import (
    HeadCursor,
    HeadQuery,
    PollOutcome,
    poll_heads,
    request_digest,
)

PUSH_EVENTS_PER_TICK = 1000


@dg.sensor(
    job=jobs.index_sources_job,
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
    wanted = source_set(sources_file.load(), catalog.catalog)
    added, removed = planned_partition_changes(context.instance, wanted)
    sync_catalog_sources(catalog.catalog, wanted)
    for problem in wanted.problems[:20]:
        context.log.warning(f"{problem}; the other entries are indexed")
    if not added and not removed:
        return dg.SkipReason(
            f"partitions equal the sources file and its marketplaces' plugin sources "
            f"({len(wanted.file)} + {len(wanted.plugins)} sources)"
        )
    context.log.info(
        f"sources: {len(added)} new, {len(removed)} removed "
        f"({len(wanted.file)} in the file, {len(wanted.plugins)} plugin sources, "
        f"{len(wanted.skipped)} entries skipped)"
    )
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if added:
        requests.append(marketplace_sources.build_add_request(added))
    if removed:
        requests.append(marketplace_sources.build_delete_request(removed))
    return dg.SensorResult(
        dynamic_partitions_requests=requests,
        run_requests=range_run_requests(added, f"new-sources:{context.cursor or 0}"),
        cursor=str(int(context.cursor or 0) + 1),
    )


# -- push detection by polling heads ---------------------------------------------------------------


def head_queries(
    sources_file: SourcesFileResource,
    head_polling: HeadPollingResource,
    catalog: Catalog | None = None,
) -> dict[str, HeadQuery]:
    """A head lookup per configured source whose entry is valid (a bad entry fails its own
    runs, not the polling of the others); the token (`head_polling.github_token`, from
    `GITHUB_TOKEN`) goes to GitHub sources only, and only to GitHub's hosts (`HeadQuery`).

    With the catalog, the unpinned plugin sources of indexed marketplaces are polled too; a
    pinned one changes only when its marketplace does, so it is never polled.
    """
    token = head_polling.token()
    configured = sources_file.entries().valid
    polled = source_set(configured, catalog).sources if catalog is not None else configured
    return {
        source.key: HeadQuery(
            source.key, source.url, source.ref, token=token if source.github else None
        )
        for source in polled
        if not (isinstance(source, PluginSourceConfig) and source.pinned_commit)
    }


def _log_poll(context: dg.SensorEvaluationContext, outcome: PollOutcome) -> None:
    context.log.info(
        f"polled {len(outcome.page)} heads in {outcome.elapsed_s:.1f} s: "
        f"{len(outcome.moved)} moved, {outcome.in_flight} already requested, "
        f"{len(outcome.failed)} failed, {len(outcome.unanswered)} not answered in time "
        f"(cycle {outcome.cursor.cycles}, next page at {outcome.cursor.position})"
    )
    for key, error in list(outcome.failed.items())[:5]:
        context.log.warning(
            f"source {key}: head lookup failed: {error}; its pushes are found by the webhook "
            "or the nightly re-index"
        )
    if outcome.unanswered:
        context.log.warning(
            f"{len(outcome.unanswered)} head lookups did not finish within the tick budget "
            f"(first: {', '.join(outcome.unanswered[:5])}); they are retried next cycle"
        )


@dg.sensor(
    job=jobs.index_source_batch_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls source heads with list_heads (no REST call), a page a tick, and indexes "
    "the sources whose head moved, in batches.",
)
def source_heads_sensor(
    context: dg.SensorEvaluationContext,
    sources_file: SourcesFileResource,
    catalog: CatalogResource,
    head_polling: HeadPollingResource,
) -> dg.SensorResult:
    # A malformed sources file fails the tick; the cursor stays where it was.
    queries = head_queries(sources_file, head_polling, catalog.catalog)
    order = marketplace_sources.get_partition_keys(dynamic_partitions_store=context.instance)
    outcome = poll_heads(
        order,
        queries,
        HeadCursor.from_json(context.cursor),
        lister=head_polling.lister(),
        indexed_commits=catalog.catalog.indexed_commits,
        page_size=head_polling.page_size,
        budget_s=head_polling.tick_budget_seconds,
        retry_after_s=head_polling.retry_after_seconds,
    )
    _log_poll(context, outcome)
    cursor = outcome.cursor.to_json()
    # a first index the sources sync sensor already requested shows as in progress
    running = _in_progress(context.instance, outcome.never_indexed)
    wanted = [key for key in outcome.moved if key not in running]
    if not wanted:
        return dg.SensorResult(
            skip_reason=f"no head moved among {len(outcome.page)} polled sources", cursor=cursor
        )
    digest = request_digest(outcome.moved, salt=str(round(time.time())))
    return dg.SensorResult(
        run_requests=batch_run_requests(
            wanted, f"heads:{digest}", tags={"skillmeat/trigger": "head-poll"}
        ),
        cursor=cursor,
    )


def _in_progress(instance: dg.DagsterInstance, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    statuses = instance.get_status_by_partition(INDEX_ASSET_KEY, keys, marketplace_sources) or {}
    return {key for key in keys if statuses.get(key) == dg.AssetPartitionStatus.IN_PROGRESS}


# -- push detection by webhook ---------------------------------------------------------------------


def _requested_event_ids(cursor: str | None) -> list[int]:
    if not cursor:
        return []
    try:
        return [int(i) for i in json.loads(cursor)["requested"]]
    except (ValueError, KeyError, TypeError):
        return []


@dg.sensor(
    job=jobs.index_source_batch_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Indexes the sources of GitHub push deliveries stored by "
    "`skillmeat-pipeline webhook-server`, in batches.",
)
def push_events_sensor(
    context: dg.SensorEvaluationContext, catalog: CatalogResource
) -> dg.SensorResult:
    """Pending push events become runs; they are marked handled on the next tick.

    The cursor names the events whose runs this tick requests. Dagster stores the cursor with
    the run requests it reserves, so once the next tick sees it those runs exist (or are being
    submitted): only then are the events marked handled. A tick that fails marks nothing.
    """
    store = catalog.catalog
    previous = _requested_event_ids(context.cursor)
    if previous:
        store.mark_push_events_handled(previous)
    events = store.pending_push_events(limit=PUSH_EVENTS_PER_TICK, exclude_ids=previous)
    cursor = json.dumps({"requested": [event.id for event in events]})
    if not events:
        return dg.SensorResult(skip_reason="no pending push events", cursor=cursor)
    wanted = {key for event in events for key in event.source_keys}
    order = marketplace_sources.get_partition_keys(dynamic_partitions_store=context.instance)
    keys = [key for key in order if key in wanted]
    gone = sorted(wanted.difference(keys))
    if gone:
        context.log.warning(
            f"push events name {len(gone)} source(s) without a partition (removed from the "
            f"sources file?); they are not indexed: {', '.join(gone[:10])}"
        )
    context.log.info(f"{len(events)} push event(s): indexing {len(keys)} source(s)")
    if not keys:
        return dg.SensorResult(skip_reason="push events name no current source", cursor=cursor)
    return dg.SensorResult(
        run_requests=batch_run_requests(
            keys,
            f"push-events:{events[0].id}-{events[-1].id}",
            tags={"skillmeat/trigger": "webhook"},
        ),
        cursor=cursor,
    )
