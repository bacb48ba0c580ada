"""Index one marketplace source, step by step (SPEC §1), with no Dagster import.

The steps are separate functions because the Dagster asset runs each as its own op over a batch of
sources; the batch job and `skillmeat-pipeline detect URL` call the very same steps:

    start_plan -> resolve -> route -> clone ------------------> write
                     |         |        '-> FellBack -> read_over_api -'
                     |         '-> read_over_api (the api strategy) ---'
                     '-> Current / Failed ----------------------------'

Each step takes a `SourcePlan` and returns a new plan or an outcome (`lib/scan/outcomes.py`); none
changes what it was given. Here: `start_plan`, `resolve`, `route` and `scan_source` chaining every
step; the others are `cloning.py`, `api_read.py` and `write.py`. Each fact is logged once, where it
happens, as a structured record (`events.py`) on the `skillmeat_pipeline` logger tree (the Dagster
layer forwards that tree to the run log).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import replace

from skillmeat_pipeline.lib.catalog.records import SourceRecord
from skillmeat_pipeline.lib.core.models import ArtifactKey, CatalogEntry
from skillmeat_pipeline.lib.core.plugin_sources import PluginSourceConfig
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.core.strategy import StrategyInputs, select_strategy
from skillmeat_pipeline.lib.core.untrusted import TreeTooLargeError, screen_snapshot
from skillmeat_pipeline.lib.fetch.git.clone import RemoteHead, libgit2_status, resolve_head
from skillmeat_pipeline.lib.fetch.git.errors import CloneError
from skillmeat_pipeline.lib.fetch.github.errors import ApiError
from skillmeat_pipeline.lib.scan.api_read import ListingOnly, read_over_api, spend_api
from skillmeat_pipeline.lib.scan.cloning import clone
from skillmeat_pipeline.lib.scan.cost import Timeline
from skillmeat_pipeline.lib.scan.events import FAILURE_NEXT, FALLBACK_NEXT, log_event
from skillmeat_pipeline.lib.scan.outcomes import (
    Current,
    Failed,
    FellBack,
    SourceOutcome,
    SourcePlan,
    failed,
)
from skillmeat_pipeline.lib.scan.settings import Fetchers
from skillmeat_pipeline.lib.scan.tree_scan import (
    detect_as_configured,
    manifest_paths_of,
    pinned_commit,
)

logger = logging.getLogger(__name__)


def start_plan(source: SourceConfig, record: SourceRecord | None) -> SourcePlan:
    """A source's plan from what the catalog holds of its last index.

    The catalog forgets the indexed commit when a source's configuration changes, so a changed
    `root_hint` or `exclude` is re-indexed even though the head did not move. The record's
    `scan_version` travels with the plan to the write, which refuses it if a newer scan was
    written meanwhile.
    """
    return SourcePlan(
        source=source,
        indexed_commit=record.last_indexed_commit_sha if record else None,
        previous_target=record.clone_target if record else None,
        base_version=record.scan_version if record else None,
    )


# -- step 1: resolve the head ---------------------------------------------------------------------


class SharedHeadLookups:
    """Head lookups of one batch, one per repository and ref: a marketplace points many plugin
    sources at the same few repositories. Thread-safe; a second caller waits for the first."""

    def __init__(self, fetchers: Fetchers) -> None:
        self._fetchers = fetchers
        self._lock = threading.Lock()
        self._lookups: dict[tuple[str, str | None, bool], Future[RemoteHead]] = {}

    def __call__(self, source: SourceConfig) -> RemoteHead:
        key = (source.url, source.ref, bool(source.github))
        with self._lock:
            pending = self._lookups.get(key)
            first = pending is None
            if pending is None:
                pending = self._lookups[key] = Future()
        if first:
            try:
                pending.set_result(
                    resolve_head(
                        source.url,
                        source.ref,
                        token=self._fetchers.token_for(source),
                        settings=self._fetchers.settings.clone,
                    )
                )
            except BaseException as exc:
                pending.set_exception(exc)
        return pending.result()


def resolve(
    plan: SourcePlan,
    fetchers: Fetchers,
    *,
    heads: Callable[[SourceConfig], RemoteHead] | None = None,
) -> SourcePlan | Current | Failed:
    """The head commit over the git protocol (no REST call): `Current` when it is indexed.

    A git side that cannot be reached is not fatal for a GitHub source: the reason is kept and the
    API takes over in the later steps. A pinned plugin source's head is its pin: nothing is asked.
    `heads` shares lookups between the plans of a batch (`SharedHeadLookups`).
    """
    timeline = Timeline(plan.cost)
    head, unusable, lookup_error = None, None, None
    pin = pinned_commit(plan.source)
    with timeline.phase("resolve") as phase:
        status = libgit2_status()  # logs its own warning, once per process
        if pin is not None:
            head = RemoteHead(ref_name=pin, commit_sha=pin)
            phase.set(commit_sha=pin, ref="pinned")
        if not status.usable:
            unusable = f"libgit2 unusable: {status.problem}"
            phase.fail(unusable)
        elif head is None:
            try:
                head = (heads or SharedHeadLookups(fetchers))(plan.source)
                phase.set(commit_sha=head.commit_sha, ref=head.ref_name)
            except CloneError as exc:
                phase.fail(exc)
                lookup_error = exc
    plan = replace(plan, head=head, cost=timeline.cost())
    if lookup_error is not None:
        if not plan.source.github:
            log_event(
                logger,
                logging.ERROR,
                f"source {plan.key}: head lookup failed and it has no API fallback: "
                f"{lookup_error}; {FAILURE_NEXT}",
                source=plan.key,
                event="head_lookup_failed",
                reason=lookup_error.reason.value,
            )
            return failed(plan, str(lookup_error))
        unusable = f"git head lookup failed ({lookup_error.reason}): {lookup_error}"
        log_event(
            logger,
            logging.WARNING,
            f"source {plan.key}: {unusable}; {FALLBACK_NEXT}",
            source=plan.key,
            event="head_lookup_fallback",
            reason=lookup_error.reason.value,
        )
    if unusable is not None:
        return replace(plan, clone_unusable_reason=unusable)
    if (
        not fetchers.settings.force
        and head is not None
        and plan.previous_target is not None
        and head.commit_sha == plan.indexed_commit
    ):
        return Current(
            plan.key,
            head.commit_sha,
            plan.previous_target,
            cost=plan.cost,
            base_version=plan.base_version,
        )
    return plan


# -- step 2: route (select a strategy) ------------------------------------------------------------


def route(plan: SourcePlan, fetchers: Fetchers) -> SourcePlan:
    """Choose the strategy (SPEC §4) and log the structured selection record."""
    timeline = Timeline(plan.cost)
    source, settings = plan.source, fetchers.settings
    artifact_paths: list[str] | None = None
    manifest_paths: list[str] = []
    repo_size_mb: float | None = None
    with timeline.phase("select") as phase:
        if plan.previous_target is not None:
            artifact_paths = plan.previous_target.artifact_paths
            manifest_paths = plan.previous_target.patterns
        elif (
            source.github
            and plan.clone_unusable_reason is None
            and not isinstance(source, PluginSourceConfig)
        ):
            # First index of a GitHub source: size it from the repository and one tree call.
            # Not for plugin sources: marketplaces point many entries at the same few
            # repositories, and one clone of a commit serves them all (`clone_together`).
            stats = fetchers.github.start_scan(source.github)
            try:
                repo_size_mb = fetchers.github.repository(source.github, scan=stats).size / 1024
                ref = plan.head.commit_sha if plan.head else source.ref
                tree = fetchers.github.fetch_snapshot(source.github, ref, scan=stats)
                estimate = detect_as_configured(ListingOnly(screen_snapshot(tree)), source)
                artifact_paths = [a.path for a in estimate.artifacts]
                manifest_paths = manifest_paths_of(estimate)
            except (ApiError, TreeTooLargeError) as exc:
                # Not knowing the count only means a clone decides it.
                log_event(
                    logger,
                    logging.WARNING,
                    f"source {plan.key}: could not size the repository over the API ({exc}); "
                    "cloning to count",
                    source=plan.key,
                    event="sizing_failed",
                )
                phase.note("sizing failed", error=str(exc))
            finally:
                # calls that failed were spent too
                spend_api(timeline, stats)
                phase.set(api_calls=stats.api_calls)
        selection = select_strategy(
            StrategyInputs(
                source=plan.key,
                artifact_paths=artifact_paths,
                manifest_paths=manifest_paths,
                is_github=bool(source.github),
                deep_indexing=source.deep_indexing,
                repo_size_mb=repo_size_mb,
                max_clone_mb=settings.max_clone_mb,
                clone_unusable_reason=plan.clone_unusable_reason,
                api_call_budget=fetchers.github.call_budget,
            )
        )
        phase.set(
            selected_strategy=selection.selected_strategy.value,
            patterns_count=selection.patterns_count,
            artifact_count=selection.artifact_count,  # None: unknown until cloned
            reason=selection.reason,
            fallback=selection.fallback,
        )
    record = selection.log_record()
    logger.log(
        logging.WARNING if selection.fallback else logging.INFO,
        "strategy selected: %s",
        record,
        extra={"record": record},
    )
    return replace(
        plan,
        selection=selection,
        fallback_reason=selection.reason if selection.fallback else plan.fallback_reason,
        cost=timeline.cost(),
    )


# -- all steps for one source ---------------------------------------------------------------------


def scan_source(
    source: SourceConfig,
    fetchers: Fetchers,
    *,
    record: SourceRecord | None = None,
    previous: Mapping[ArtifactKey, CatalogEntry] | None = None,
    api_only: bool = False,
) -> SourceOutcome:
    """Every step for one source, with the same fallbacks as the asset (previews, tests).

    `api_only` reads over the GitHub API without touching git (`detect --github`).
    """
    plan = start_plan(source, record)
    if api_only:
        return read_over_api(plan, fetchers, previous or {})
    resolved = resolve(plan, fetchers)
    if not isinstance(resolved, SourcePlan):
        return resolved
    routed = route(resolved, fetchers)
    if routed.via_api:
        return read_over_api(routed, fetchers, previous or {})
    cloned = clone(routed, fetchers, previous or {})
    if isinstance(cloned, FellBack):
        return read_over_api(cloned, fetchers, previous or {})
    return cloned
