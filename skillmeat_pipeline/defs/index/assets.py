"""`marketplace_index`: one partition per source, indexed by a graph of ops visible in the UI.

resolve_heads -> select_strategies -> clone_and_extract (pool git_clone)
                                   -> fetch_from_api (pool github_api, also the clone fallback)
-> write_index_rows (fan-in of every branch).

Each op runs one step of `lib/scan/` over its batch (sources in parallel up to a bound)
and only splits the outcomes into its outputs. One bad source never fails the others: the last op
yields one materialization (with its own metadata) per source that succeeded, then fails the run
naming the sources that did not, so exactly those partitions show as failed.
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import dagster as dg

from skillmeat_pipeline.defs.index.checks import (
    INDEX_ASSET_KEY,
    INDEX_CHECK_SPECS,
    check_evaluations,
    no_high_risk_evaluation,
    source_risk,
)
from skillmeat_pipeline.defs.index.partitions import marketplace_sources
from skillmeat_pipeline.defs.index.run_log import tree_in_run_log
from skillmeat_pipeline.defs.resources import (
    CatalogResource,
    FetchersResource,
    SourcesFileResource,
    TelemetryResource,
)
from skillmeat_pipeline.lib.catalog.source_set import source_set
from skillmeat_pipeline.lib.core.sources import SourcesFileError
from skillmeat_pipeline.lib.scan.api_read import read_over_api
from skillmeat_pipeline.lib.scan.cloning import clone_batch
from skillmeat_pipeline.lib.scan.outcomes import (
    Current,
    Failed,
    FellBack,
    SourceOutcome,
    SourcePlan,
)
from skillmeat_pipeline.lib.scan.pipeline import SharedHeadLookups, resolve, route, start_plan
from skillmeat_pipeline.lib.scan.write import Written, write

logger = logging.getLogger(__name__)

# A backfill of thousands of sources becomes runs of this many: each run pays a process start,
# a code-location load and its run events (about 3 s of CPU here), so fewer, larger runs index
# faster (a 500-source backfill on 2 cores: 235 sources/min at 25 a run, 284 at 50).
SOURCES_PER_RUN = 50

# Transient trouble outside one source (a database restart, an exhausted pool) retries the op;
# per-source failures are outcomes inside each op and never raise.
OP_RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# With SKILLMEAT_EXECUTOR=celery, dagster-celery sends a step to the Celery queue its op names
# (default "dagster"), so clone and API workers are sized apart (README "More machines").
CELERY_QUEUE_TAG = "dagster-celery/queue"

T = TypeVar("T")
R = TypeVar("R")


class IndexConfig(dg.Config):
    """Run config of `marketplace_index` (the `resolve_heads` op)."""

    force: bool = False  # re-index sources whose head is the indexed commit


def _map_bounded(function: Callable[[T], R], items: Sequence[T], max_workers: int) -> list[R]:
    """`function` over `items` on at most `max_workers` threads (clones and HTTP free the GIL)."""
    if len(items) <= 1 or max_workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(max_workers, len(items))) as pool:
        return list(pool.map(function, items))


RESOLVE_OUTS = {
    "settled": dg.Out(list, description="sources already current, or failed before fetching"),
    "to_scan": dg.Out(list, is_required=False, description="sources whose head moved"),
}


@dg.op(out=RESOLVE_OUTS, retry_policy=OP_RETRY_POLICY)
def resolve_heads(
    context: dg.OpExecutionContext,
    config: IndexConfig,
    sources_file: SourcesFileResource,
    catalog: CatalogResource,
    fetchers: FetchersResource,
):
    """Each source's head commit over the git protocol (no REST call); unchanged ones stop here."""
    yield from resolve_source_heads(
        context, list(context.partition_keys), config.force, sources_file, catalog, fetchers
    )


def resolve_source_heads(
    context: dg.OpExecutionContext,
    keys: list[str],
    force: bool,
    sources_file: SourcesFileResource,
    catalog: CatalogResource,
    fetchers: FetchersResource,
) -> Iterator[dg.Output[list[Any]]]:
    """The body of `resolve_heads` for any list of sources (the batch job names its own)."""
    store = catalog.catalog
    try:
        entries = sources_file.entries()
        # the file's sources and the plugin sources of its indexed marketplaces (SPEC §2.1)
        configured = source_set(entries.valid, store).by_key()
    except SourcesFileError as exc:
        raise dg.Failure(
            description=f"the sources file cannot be used, nothing was indexed: {exc}",
            allow_retries=False,
        ) from None
    store.upsert_sources([configured[k] for k in keys if k in configured])
    run_fetchers = fetchers.fetchers
    if force:
        run_fetchers = replace(run_fetchers, settings=replace(run_fetchers.settings, force=True))
    with tree_in_run_log(context):
        settled: list[SourceOutcome] = []
        for key in keys:
            if key in configured:
                continue
            if key in entries.invalid:
                reason = (
                    f"source {key}: its entry in the sources file is invalid ("
                    f"{entries.invalid[key]}); nothing was fetched and its rows stay as they are"
                )
                event = "source_invalid"
            else:
                reason = (
                    f"source {key} is not a configured source (not in the sources file "
                    f"{entries.origin}, nor listed by one of its indexed marketplaces); nothing "
                    "was fetched and its rows, if any, stay as they "
                    "are (add it to the sources file, or let `sources sync` remove the partition)"
                )
                event = "source_not_configured"
            logger.error(
                f"{reason}; the partition fails", extra={"record": {"source": key, "event": event}}
            )
            settled.append(Failed(source_key=key, reason=reason))
        plans = [start_plan(configured[k], store.get_source(k)) for k in keys if k in configured]
        heads = SharedHeadLookups(run_fetchers)  # one lookup per repository and ref
        outcomes = _map_bounded(
            lambda plan: resolve(plan, run_fetchers, heads=heads),
            plans,
            fetchers.max_parallel_sources,
        )
        to_scan = [o for o in outcomes if isinstance(o, SourcePlan)]
        settled += [o for o in outcomes if not isinstance(o, SourcePlan)]
        current = sum(1 for o in settled if isinstance(o, Current))
        logger.info(
            f"{len(keys)} sources: {current} current, {len(to_scan)} to index, "
            f"{len(settled) - current} failed before fetching"
        )
    yield dg.Output(settled, "settled")
    if to_scan:
        yield dg.Output(to_scan, "to_scan")


@dg.op(
    out={
        "git": dg.Out(list, is_required=False, description="sources to clone"),
        "api": dg.Out(list, is_required=False, description="sources to read over the GitHub API"),
    },
    retry_policy=OP_RETRY_POLICY,
)
def select_strategies(context: dg.OpExecutionContext, fetchers: FetchersResource, plans: list):
    """Pick api, sparse_manifest or sparse_directory per source and log why (SPEC §4)."""
    with tree_in_run_log(context):
        routed = _map_bounded(
            lambda plan: route(plan, fetchers.fetchers), plans, fetchers.max_parallel_sources
        )
    git = [p for p in routed if not p.via_api]
    api = [p for p in routed if p.via_api]
    if git:
        yield dg.Output(git, "git")
    if api:
        yield dg.Output(api, "api")


@dg.op(
    out={
        "cloned": dg.Out(list, is_required=False, description="outcomes of cloned sources"),
        "fallback": dg.Out(list, is_required=False, description="GitHub sources the clone failed"),
    },
    pool="git_clone",
    tags={CELERY_QUEUE_TAG: "clone"},
    retry_policy=OP_RETRY_POLICY,
)
def clone_and_extract(
    context: dg.OpExecutionContext,
    catalog: CatalogResource,
    fetchers: FetchersResource,
    plans: list,
):
    """Bare depth-1 clone under a hard timeout, detection and extraction; retries then fallback.

    Each repository commit is cloned once, however many sources of the batch point at it.
    """
    store = catalog.catalog
    with tree_in_run_log(context):
        outcomes = clone_batch(
            plans,
            fetchers.fetchers,
            store.previous_entries,
            lambda function, groups: _map_bounded(function, groups, fetchers.max_parallel_sources),
        )
    ended = [o for o in outcomes if not isinstance(o, FellBack)]
    fallback = [o for o in outcomes if isinstance(o, FellBack)]
    if ended:
        yield dg.Output(ended, "cloned")
    if fallback:
        yield dg.Output(fallback, "fallback")


@dg.op(pool="github_api", tags={CELERY_QUEUE_TAG: "api"}, retry_policy=OP_RETRY_POLICY)
def fetch_from_api(
    context: dg.OpExecutionContext,
    catalog: CatalogResource,
    fetchers: FetchersResource,
    batches: list,
) -> list:
    """Tree and manifests over the GitHub REST API and raw reads, at most 10 REST calls each."""
    store = catalog.catalog
    routed = [item for batch in batches for item in batch]
    with tree_in_run_log(context):
        return _map_bounded(
            lambda item: read_over_api(item, fetchers.fetchers, store.previous_entries(item.key)),
            routed,
            fetchers.max_parallel_sources,
        )


def partition_metadata(written: Written) -> dict[str, Any]:
    """The per-partition metadata of SPEC §7; numbers stay numbers so the UI plots them."""
    outcome = written.outcome
    cost = outcome.cost
    return {
        "artifact_count": outcome.artifact_count,
        "dagster/row_count": outcome.artifact_count,
        "rows_affected": written.rows_affected,
        "clone_ms": cost.clone_ms,
        "extract_ms": cost.extract_ms,
        "findings_ms": cost.findings_ms,
        "write_ms": written.write_ms,
        "total_ms": round(cost.busy_ns() / 1e6),
        "api_calls": cost.api_calls,
        "raw_reads": cost.raw_reads,
        "archive_bytes": cost.archive_bytes,
        "bytes_fetched": cost.bytes_fetched,
        "strategy": dg.MetadataValue.text(outcome.strategy.value if outcome.strategy else "none"),
        "fallback_reason": dg.MetadataValue.text(outcome.fallback_reason or "none"),
        "commit_sha": dg.MetadataValue.text(outcome.commit_sha or ""),
        "scan_status": dg.MetadataValue.text(outcome.status.value),
    }


@dg.op(
    out={
        "result": dg.Out(is_required=False),
        # one output per check, so a run that selects the checks maps each to its own output
        **{spec.get_python_identifier(): dg.Out(is_required=False) for spec in INDEX_CHECK_SPECS},
    }
)
def write_index_rows(
    context: dg.OpExecutionContext,
    catalog: CatalogResource,
    telemetry: TelemetryResource,
    results: list,
):
    """One transaction per source; a materialization per indexed source, failures named.

    The transactions run in order on one background thread while this one yields each written
    source's events, so Dagster stores a source's events (several database writes each) while
    the next source's rows are being written rather than after.
    """
    store, run_telemetry = catalog.catalog, telemetry.telemetry
    batch = [outcome for outcomes in results for outcome in outcomes]
    failed: list[Failed] = []
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-write")
    try:
        with tree_in_run_log(context):
            writes = [writer.submit(write, store, outcome) for outcome in batch]
            for pending in writes:
                written = pending.result()
                outcome = written.outcome
                # the source's whole span tree, now that its last step is done
                trace_id = run_telemetry.record_scan(outcome, run_id=context.run_id)
                if isinstance(outcome, Failed):
                    failed.append(outcome)
                    # the partition's page shows why (a failed run alone says only "failed")
                    yield dg.AssetObservation(
                        asset_key=INDEX_ASSET_KEY,
                        partition=outcome.source_key,
                        description=f"not indexed: {outcome.reason}",
                        metadata={
                            "scan_status": dg.MetadataValue.text(outcome.status.value),
                            "error": dg.MetadataValue.text(outcome.reason),
                        },
                    )
                    continue
                logger.info(
                    f"Scan complete: {outcome.cost.api_calls} API calls for "
                    f"{outcome.artifact_count} artifacts ({outcome.source_key}, "
                    f"{outcome.status.value}, strategy {outcome.strategy})",
                    extra={
                        "record": {
                            "source": outcome.source_key,
                            "event": "scan_complete",
                            "api_calls": outcome.cost.api_calls,
                            "artifact_count": outcome.artifact_count,
                            "strategy": outcome.strategy.value,
                            "scan_status": outcome.status.value,
                            "otel_trace_id": trace_id,
                        }
                    },
                )
                metadata = partition_metadata(written)
                risk = source_risk(store, outcome)
                metadata |= risk.metadata()
                if trace_id:
                    metadata["otel_trace_id"] = dg.MetadataValue.text(trace_id)
                    if trace_url := run_telemetry.trace_url(trace_id):
                        metadata["otel_trace_url"] = dg.MetadataValue.url(trace_url)
                # yielded, not logged: Dagster stores each event now, not when the op ends
                yield dg.AssetMaterialization(
                    asset_key=INDEX_ASSET_KEY, partition=outcome.source_key, metadata=metadata
                )
                yield from check_evaluations(outcome)
                yield no_high_risk_evaluation(outcome.source_key, risk)
    finally:
        # a run stopped half-way writes no more rows than it reported
        writer.shutdown(wait=True, cancel_futures=True)
    # the runs list (a backfill's page included) shows how much of a failed run succeeded
    context.instance.add_run_tags(
        context.run_id,
        {
            "skillmeat/sources_indexed": str(len(batch) - len(failed)),
            "skillmeat/sources_failed": str(len(failed)),
        },
    )
    if failed:
        names = "; ".join(f"{f.source_key}: {f.reason}" for f in failed)
        raise dg.Failure(
            description=(
                f"{len(failed)} of {len(batch)} sources failed ({len(batch) - len(failed)} "
                f"indexed); their last good rows stay: {names}"
            ),
            metadata={"failed_sources": [f.source_key for f in failed]},
            allow_retries=False,
        )
    # Every partition got its own events above; the check outputs are marked done so that
    # Dagster does not log that they were never yielded.
    for spec in INDEX_CHECK_SPECS:
        name = spec.get_python_identifier()
        if name in context.selected_output_names:
            yield dg.Output(None, output_name=name)


def index_steps(settled: Any, to_scan: Any) -> Any:
    """The ops after the head lookup, wired once for the asset and for the batch job."""
    git, api = select_strategies(to_scan)
    cloned, fallback = clone_and_extract(git)
    api_results = fetch_from_api([api, fallback])
    return write_index_rows([settled, cloned, api_results])


@dg.graph_asset(
    partitions_def=marketplace_sources,
    backfill_policy=dg.BackfillPolicy.multi_run(SOURCES_PER_RUN),
    check_specs=INDEX_CHECK_SPECS,
    group_name="catalog",
    kinds={"python", "sqlite"},
    description="Catalog rows of every artifact in a marketplace source (one partition a source).",
)
def marketplace_index() -> dict[str, Any]:
    outputs = index_steps(*resolve_heads())
    return {
        "result": outputs.result,
        **{
            spec.get_python_identifier(): getattr(outputs, spec.get_python_identifier())
            for spec in INDEX_CHECK_SPECS
        },
    }
