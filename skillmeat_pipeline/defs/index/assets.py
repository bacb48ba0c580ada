"""`marketplace_index`: one partition per source, indexed by a graph of ops visible in the UI.

resolve_heads -> select_strategies -> clone_and_extract (pool git_clone)
                                   -> fetch_from_api (pool github_api, also the clone fallback)
-> write_index_rows (fan-in of every branch).

A run covers a batch of partitions (BackfillPolicy.multi_run): every op works on its batch with
sources in parallel up to a bound, one bad source never fails the others, and the last op logs one
materialization (with its own metadata) per source that succeeded, then fails the run naming the
sources that did not, so exactly those partitions show as failed.
"""

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import dagster as dg

from skillmeat_pipeline.defs.index.checks import INDEX_CHECK_SPECS, check_evaluations
from skillmeat_pipeline.defs.index.partitions import marketplace_sources
from skillmeat_pipeline.defs.index.run_log import log_record, log_to_run
from skillmeat_pipeline.defs.resources import (
    CatalogResource,
    FetchersResource,
    SourcesFileResource,
    TelemetryResource,
)
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.sources import SourcesFileError
from skillmeat_pipeline.lib.core.strategy import Strategy
from skillmeat_pipeline.lib.fetch.git.clone import CloneError
from skillmeat_pipeline.lib.fetch.github.client import ApiError
from skillmeat_pipeline.lib.scan.pipeline import (
    ScanResult,
    ScanStatus,
    SourcePlan,
    clone_fallback_reason,
    current_result,
    failed_result,
    new_plan,
    plan_scan,
    resolve_source,
    scan_by_api,
    scan_by_clone,
    write_result,
)

INDEX_ASSET_KEY = dg.AssetKey("marketplace_index")
# A backfill of thousands of sources becomes runs of this many: each run pays a process start,
# a code-location load and its run events (about 3 s of CPU here), so fewer, larger runs index
# faster (a 500-source backfill on 2 cores: 235 sources/min at 25 a run, 284 at 50).
SOURCES_PER_RUN = 50

# Transient trouble outside one source (a database restart, an exhausted pool) retries the op;
# per-source failures are handled inside each op and never raise.
OP_RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

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
) -> Iterator[dg.Output]:
    """The body of `resolve_heads` for any list of sources (the batch job names its own)."""
    try:
        configured = {source.key: source for source in sources_file.load()}
    except SourcesFileError as exc:
        raise dg.Failure(
            description=f"the sources file cannot be used, nothing was indexed: {exc}",
            allow_retries=False,
        ) from None
    store = catalog.catalog
    store.upsert_sources([configured[k] for k in keys if k in configured])
    settled: list[ScanResult] = [
        ScanResult(
            source_key=key,
            status=ScanStatus.FAILED,
            error=f"source {key} is not in the sources file any more; its rows stay as they are "
            "(run `skillmeat-pipeline sources sync` to mark them removed)",
        )
        for key in keys
        if key not in configured
    ]
    for missing in settled:
        log_record(
            context,
            logging.ERROR,
            f"{missing.error}; the partition fails",
            source=missing.source_key,
            event="source_not_configured",
        )
    plans = [new_plan(configured[k], store.get_source(k)) for k in keys if k in configured]
    run_fetchers = fetchers.fetchers
    if force:
        run_fetchers = replace(run_fetchers, settings=replace(run_fetchers.settings, force=True))

    def resolve(plan: SourcePlan) -> ScanResult | SourcePlan:
        try:
            if resolve_source(plan, run_fetchers):
                return current_result(plan)
        except CloneError as exc:
            log_record(
                context,
                logging.ERROR,
                f"source {plan.key}: head lookup failed and it has no API fallback: {exc}; "
                "the partition fails and its last good rows stay",
                source=plan.key,
                event="head_lookup_failed",
                reason=exc.reason.value,
            )
            return failed_result(plan, str(exc))
        if plan.clone_unusable_reason:
            log_to_run(
                context,
                logging.WARNING,
                f"source {plan.key}: {plan.clone_unusable_reason}; the GitHub API path takes over",
            )
        return plan

    to_scan: list[SourcePlan] = []
    for outcome in _map_bounded(resolve, plans, fetchers.max_parallel_sources):
        if isinstance(outcome, ScanResult):
            settled.append(outcome)
        else:
            to_scan.append(outcome)
    current = sum(1 for r in settled if r.status is ScanStatus.CURRENT)
    context.log.info(
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

    def select(plan: SourcePlan) -> SourcePlan:
        selection = plan_scan(plan, fetchers.fetchers)
        message = f"strategy for {plan.key}: {selection.log_record()}"
        if selection.fallback:
            plan.fallback_reason = selection.reason
        log_to_run(context, logging.WARNING if selection.fallback else logging.INFO, message)
        return plan

    selected = _map_bounded(select, plans, fetchers.max_parallel_sources)
    git = [p for p in selected if p.selection.selected_strategy is not Strategy.API]
    api = [p for p in selected if p.selection.selected_strategy is Strategy.API]
    if git:
        yield dg.Output(git, "git")
    if api:
        yield dg.Output(api, "api")


@dg.op(
    out={
        "cloned": dg.Out(list, is_required=False, description="scan results of cloned sources"),
        "fallback": dg.Out(list, is_required=False, description="GitHub sources the clone failed"),
    },
    pool="git_clone",
    retry_policy=OP_RETRY_POLICY,
)
def clone_and_extract(
    context: dg.OpExecutionContext,
    catalog: CatalogResource,
    fetchers: FetchersResource,
    plans: list,
):
    """Bare depth-1 clone under a hard timeout, detection and extraction; retries then fallback."""
    store, run_fetchers = catalog.catalog, fetchers.fetchers

    def clone(plan: SourcePlan) -> ScanResult | SourcePlan:
        def on_retry(number: int, exc: BaseException, wait: float) -> None:
            log_record(
                context,
                logging.WARNING,
                f"source {plan.key}: clone failed ({exc}); retry {number} in {wait:.1f} s",
                source=plan.key,
                event="clone_retry",
                retry=number,
                wait_s=round(wait, 1),
            )

        try:
            return scan_by_clone(
                plan, run_fetchers, store.previous_entries(plan.key), on_retry=on_retry
            )
        except CloneError as exc:
            if plan.source.github:
                plan.fallback_reason = clone_fallback_reason(plan, exc)
                log_to_run(
                    context,
                    logging.WARNING,
                    f"source {plan.key}: {plan.fallback_reason}; the GitHub API path takes over",
                )
                return plan
            log_record(
                context,
                logging.ERROR,
                f"source {plan.key}: clone failed and it has no API fallback: {exc}; "
                "the partition fails and its last good rows stay",
                source=plan.key,
                event="clone_failed",
                reason=exc.reason.value,
            )
            return failed_result(plan, str(exc))

    outcomes = _map_bounded(clone, plans, fetchers.max_parallel_sources)
    results = [o for o in outcomes if isinstance(o, ScanResult)]
    fallback = [o for o in outcomes if isinstance(o, SourcePlan)]
    if results:
        yield dg.Output(results, "cloned")
    if fallback:
        yield dg.Output(fallback, "fallback")


@dg.op(pool="github_api", retry_policy=OP_RETRY_POLICY)
def fetch_from_api(
    context: dg.OpExecutionContext,
    catalog: CatalogResource,
    fetchers: FetchersResource,
    batches: list,
) -> list:
    """Tree and manifests over the GitHub REST API and raw reads, at most 10 REST calls each."""
    store, run_fetchers = catalog.catalog, fetchers.fetchers
    plans: list[SourcePlan] = [plan for batch in batches for plan in batch]

    def read(plan: SourcePlan) -> ScanResult:
        try:
            return scan_by_api(plan, run_fetchers, store.previous_entries(plan.key))
        except ApiError as exc:
            log_record(
                context,
                logging.ERROR,
                f"source {plan.key}: the GitHub API path failed: {exc}; "
                "the partition fails and its last good rows stay",
                source=plan.key,
                event="api_failed",
            )
            return failed_result(plan, str(exc))

    return _map_bounded(read, plans, fetchers.max_parallel_sources)


def partition_metadata(result: ScanResult, write_ms: int, rows_affected: int) -> dict:
    """The per-partition metadata of SPEC §7; numbers stay numbers so the UI plots them."""
    cost = result.cost
    total_ms = round(result.cost.busy_ns() / 1e6)
    return {
        "artifact_count": result.artifact_count,
        "dagster/row_count": result.artifact_count,
        "rows_affected": rows_affected,
        "clone_ms": cost.clone_ms,
        "extract_ms": cost.extract_ms,
        "write_ms": write_ms,
        "total_ms": total_ms,
        "api_calls": cost.api_calls,
        "raw_reads": cost.raw_reads,
        "bytes_fetched": cost.bytes_fetched,
        "strategy": dg.MetadataValue.text(result.strategy.value if result.strategy else "none"),
        "fallback_reason": dg.MetadataValue.text(result.fallback_reason or "none"),
        "commit_sha": dg.MetadataValue.text(result.commit_sha or ""),
        "scan_status": dg.MetadataValue.text(result.status.value),
    }


@dataclass(frozen=True, slots=True)
class RowsWritten:
    """What one source's catalog transaction did (`error`: it failed and was rolled back)."""

    rows_affected: int
    write_ms: int
    error: Exception | None = None


def write_source_rows(store: Catalog, result: ScanResult) -> RowsWritten:
    """Write one source's rows; a failed transaction is rolled back and recorded as a failure."""
    started = time.monotonic()
    write_phase = result.cost.begin("write")
    error: Exception | None = None
    try:
        written = write_result(store, result)
    except Exception as exc:  # one source's bad rows must not lose the others' work
        write_phase.finish(error=exc)
        error = exc
        result.status, result.error = ScanStatus.FAILED, f"writing rows failed: {exc}"
        written = write_result(store, result)
    rows = written.rows_affected if written else 0
    write_phase.finish(rows_affected=rows, artifact_count=result.artifact_count)
    return RowsWritten(rows, round((time.monotonic() - started) * 1000), error)


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
    batch: list[ScanResult] = [r for b in results for r in b]
    failed: list[ScanResult] = []
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-write")
    try:
        writes = [writer.submit(write_source_rows, store, result) for result in batch]
        for result, write in zip(batch, writes, strict=True):
            written = write.result()
            if written.error is not None:
                log_record(
                    context,
                    logging.ERROR,
                    f"source {result.source_key}: writing its rows failed: {written.error}; "
                    "the transaction was rolled back and its last good rows stay",
                    source=result.source_key,
                    event="write_failed",
                )
            # the source's whole span tree, now that its last step is done
            trace_id = run_telemetry.record_scan(result, run_id=context.run_id)
            if result.status is ScanStatus.FAILED:
                failed.append(result)
                continue
            log_record(
                context,
                logging.INFO,
                f"Scan complete: {result.cost.api_calls} API calls for "
                f"{result.artifact_count} artifacts ({result.source_key}, "
                f"{result.status.value}, strategy {result.strategy})",
                source=result.source_key,
                event="scan_complete",
                api_calls=result.cost.api_calls,
                artifact_count=result.artifact_count,
                strategy=result.strategy.value if result.strategy else None,
                scan_status=result.status.value,
                otel_trace_id=trace_id,
            )
            metadata = partition_metadata(result, written.write_ms, written.rows_affected)
            if trace_id:
                metadata["otel_trace_id"] = dg.MetadataValue.text(trace_id)
                if trace_url := run_telemetry.trace_url(trace_id):
                    metadata["otel_trace_url"] = dg.MetadataValue.url(trace_url)
            # yielded, not logged: Dagster stores each event now, not when the op ends
            yield dg.AssetMaterialization(
                asset_key=INDEX_ASSET_KEY, partition=result.source_key, metadata=metadata
            )
            yield from check_evaluations(result)
    finally:
        # a run stopped half-way writes no more rows than it reported
        writer.shutdown(wait=True, cancel_futures=True)
    if failed:
        names = "; ".join(f"{r.source_key}: {r.error}" for r in failed)
        raise dg.Failure(
            description=f"{len(failed)} source(s) failed, their last good rows stay: {names}",
            metadata={"failed_sources": [r.source_key for r in failed]},
            allow_retries=False,
        )
    # The outputs are never yielded: every partition got its own events above.


@dg.graph_asset(
    partitions_def=marketplace_sources,
    backfill_policy=dg.BackfillPolicy.multi_run(SOURCES_PER_RUN),
    check_specs=INDEX_CHECK_SPECS,
    group_name="catalog",
    kinds={"python", "sqlite"},
    description="Catalog rows of every artifact in a marketplace source (one partition a source).",
)
def marketplace_index():
    settled, to_scan = resolve_heads()
    git, api = select_strategies(to_scan)
    cloned, fallback = clone_and_extract(git)
    api_results = fetch_from_api([api, fallback])
    outputs = write_index_rows([settled, cloned, api_results])
    return {
        "result": outputs.result,
        **{
            spec.get_python_identifier(): getattr(outputs, spec.get_python_identifier())
            for spec in INDEX_CHECK_SPECS
        },
    }
