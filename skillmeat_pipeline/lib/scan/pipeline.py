"""Index one marketplace source, step by step (SPEC §1), with no Dagster import.

The steps are separate functions because the Dagster asset runs each as its own op over a batch of
sources; the batch job and `skillmeat-pipeline detect URL` call the very same steps:

    start_plan -> resolve -> route -> clone ------------------> write
                     |         |        '-> FellBack -> read_over_api -'
                     |         '-> read_over_api (the api strategy) ---'
                     '-> Current / Failed ----------------------------'

Each step takes a `SourcePlan` and returns a new plan or an outcome (`lib/scan/outcomes.py`); none
changes what it was given. Each fact is logged once, here, where it happens, as a structured record
on the `skillmeat_pipeline` logger tree (the Dagster layer forwards that tree to the run log).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from skillmeat_pipeline.lib.catalog.store import Catalog, SourceRecord
from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.models import (
    ArtifactKey,
    CatalogEntry,
    Detection,
    TreeEntry,
    TreeSnapshot,
)
from skillmeat_pipeline.lib.core.retry import BackoffPolicy, call_with_retries
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.core.sources import SourceConfig, github_base_url
from skillmeat_pipeline.lib.core.strategy import (
    DEFAULT_MAX_CLONE_MB,
    Strategy,
    StrategyInputs,
    artifact_location,
    build_clone_target,
    select_strategy,
)
from skillmeat_pipeline.lib.fetch.git.clone import (
    CloneError,
    CloneSettings,
    clone_source,
    libgit2_status,
    resolve_head,
)
from skillmeat_pipeline.lib.fetch.github.client import (
    ApiError,
    GitHubClient,
    RateLimited,
    ScanStats,
)
from skillmeat_pipeline.lib.quality.rubric import score_entries
from skillmeat_pipeline.lib.scan.cost import OpenPhase, Timeline
from skillmeat_pipeline.lib.scan.outcomes import (
    Current,
    Failed,
    FellBack,
    Scanned,
    SourceOutcome,
    SourcePlan,
    failed,
)

logger = logging.getLogger(__name__)

FALLBACK_NEXT = "falling back to the GitHub API"
FAILURE_NEXT = "the partition fails and its last good rows stay"


@dataclass(frozen=True, slots=True)
class ScanSettings:
    """Limits of one scan; `from_env` reads the variables SPEC §4 and §6 name."""

    clone: CloneSettings = field(default_factory=CloneSettings)
    max_clone_mb: float = DEFAULT_MAX_CLONE_MB
    clone_retries: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(max_attempts=2, base_delay_s=1.0, max_delay_s=10.0)
    )
    # a rate limit that resets sooner than this is waited out; a later one fails the source
    max_rate_limit_wait_s: float = 60.0
    force: bool = False  # re-index even when the head is the indexed commit

    @classmethod
    def from_env(cls, **overrides: Any) -> ScanSettings:
        raw = os.environ.get("SKILLMEAT_MAX_CLONE_MB", "").strip()
        settings = cls(
            clone=CloneSettings.from_env(),
            max_clone_mb=float(raw) if raw else DEFAULT_MAX_CLONE_MB,
        )
        return replace(settings, **overrides)


@dataclass(frozen=True, slots=True)
class Fetchers:
    """Where trees come from: libgit2 (token for GitHub hosts only) and the GitHub API."""

    github: GitHubClient
    token: Secret | None = None
    settings: ScanSettings = field(default_factory=ScanSettings)

    def token_for(self, source: SourceConfig) -> Secret | None:
        return self.token if source.github else None


def _log(level: int, message: str, *, source: str, event: str, **fields: Any) -> None:
    logger.log(
        level, message, extra={"record": {"source": source, "event": event, **fields}}, stacklevel=2
    )


def _ms_since(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


def start_plan(source: SourceConfig, record: SourceRecord | None) -> SourcePlan:
    """A source's plan from what the catalog holds of its last index.

    The catalog forgets the indexed commit when a source's configuration changes, so a changed
    `root_hint` or `exclude` is re-indexed even though the head did not move.
    """
    return SourcePlan(
        source=source,
        indexed_commit=record.last_indexed_commit_sha if record else None,
        previous_target=record.clone_target if record else None,
    )


# -- step 1: resolve the head ---------------------------------------------------------------------


def resolve(plan: SourcePlan, fetchers: Fetchers) -> SourcePlan | Current | Failed:
    """The head commit over the git protocol (no REST call): `Current` when it is indexed.

    A git side that cannot be reached is not fatal for a GitHub source: the reason is kept and the
    API takes over in the later steps.
    """
    timeline = Timeline(plan.cost)
    head, unusable, lookup_error = None, None, None
    with timeline.phase("resolve") as phase:
        status = libgit2_status()  # logs its own warning, once per process
        if not status.usable:
            unusable = f"libgit2 unusable: {status.problem}"
            phase.fail(unusable)
        else:
            try:
                head = resolve_head(
                    plan.source.url,
                    plan.source.ref,
                    token=fetchers.token_for(plan.source),
                    settings=fetchers.settings.clone,
                )
                phase.set(commit_sha=head.commit_sha, ref=head.ref_name)
            except CloneError as exc:
                phase.fail(exc)
                lookup_error = exc
    plan = replace(plan, head=head, cost=timeline.cost())
    if lookup_error is not None:
        if not plan.source.github:
            _log(
                logging.ERROR,
                f"source {plan.key}: head lookup failed and it has no API fallback: "
                f"{lookup_error}; {FAILURE_NEXT}",
                source=plan.key,
                event="head_lookup_failed",
                reason=lookup_error.reason.value,
            )
            return failed(plan, str(lookup_error))
        unusable = f"git head lookup failed ({lookup_error.reason}): {lookup_error}"
        _log(
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
        return Current(plan.key, head.commit_sha, plan.previous_target, cost=plan.cost)
    return plan


# -- step 2: route (select a strategy) ------------------------------------------------------------


class _ListingOnly:
    """A snapshot that answers every read with nothing: counts artifacts from paths alone.

    Used to size a first index of a GitHub source from one tree call without reading any blob;
    JSON-declared artifacts (MCP servers, inline hooks) are not counted, so the count is a floor.
    """

    def __init__(self, snapshot: TreeSnapshot) -> None:
        self.commit_sha = snapshot.commit_sha
        self.tree_sha = snapshot.tree_sha
        self.entries = snapshot.entries

    def read_blob(self, entry: TreeEntry) -> bytes:  # noqa: ARG002 (a listing reads nothing)
        return b""


def _detect(snapshot: TreeSnapshot, source: SourceConfig) -> Detection:
    return detect_artifacts(
        snapshot,
        root_hint=source.root_hint,
        exclude=source.exclude,
        repo_name=source.github or source.key,
    )


def _manifest_paths(detection: Detection) -> list[str]:
    return [a.manifest_path or artifact_location(a.path) for a in detection.artifacts]


def _spend_api(timeline: Timeline, stats: ScanStats) -> None:
    timeline.spend(
        api_calls=stats.rest_calls,
        raw_reads=stats.raw_reads,
        bytes_fetched=stats.bytes_fetched,
        responses=stats.responses,
    )


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
        elif source.github and plan.clone_unusable_reason is None:
            # First index of a GitHub source: size it from the repository and one tree call.
            stats = fetchers.github.start_scan(source.github)
            try:
                repo_size_mb = fetchers.github.repository(source.github, scan=stats).size / 1024
                ref = plan.head.commit_sha if plan.head else source.ref
                tree = fetchers.github.fetch_snapshot(source.github, ref, scan=stats)
                estimate = _detect(_ListingOnly(tree), source)
                artifact_paths = [a.path for a in estimate.artifacts]
                manifest_paths = _manifest_paths(estimate)
            except ApiError as exc:
                # Not knowing the count only means a clone decides it.
                _log(
                    logging.WARNING,
                    f"source {plan.key}: could not size the repository over the API ({exc}); "
                    "cloning to count",
                    source=plan.key,
                    event="sizing_failed",
                )
                phase.note("sizing failed", error=str(exc))
            finally:
                # calls that failed were spent too
                _spend_api(timeline, stats)
                phase.set(api_calls=stats.rest_calls)
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


# -- step 3: clone and extract --------------------------------------------------------------------


def _scanned(
    plan: SourcePlan,
    timeline: Timeline,
    strategy: Strategy,
    snapshot: TreeSnapshot,
    previous: Mapping[ArtifactKey, CatalogEntry],
) -> Scanned:
    """Detection and extraction of a fetched tree, as the outcome of `plan` (cost added later)."""
    started = time.monotonic()
    source = plan.source
    with timeline.phase("extract") as phase:
        detection = _detect(snapshot, source)
        entries = extract_catalog_entries(
            snapshot,
            detection,
            source_key=plan.key,
            upstream_url=upstream_url(source, snapshot.commit_sha),
            deep_indexing=source.deep_indexing,
            previous=previous,
        )
        entries = score_entries(entries)
        phase.set(
            artifact_count=len(entries),
            success_count=sum(1 for e in entries if not e.problems),
        )
    timeline.spend(extract_ms=_ms_since(started))
    target = build_clone_target(
        strategy,
        [e.path for e in entries],
        _manifest_paths(detection),
        commit_sha=snapshot.commit_sha,
        tree_sha=snapshot.tree_sha,
        tree_entry_count=len(snapshot.entries),
    )
    return Scanned(
        source_key=plan.key,
        target=target,
        entries=tuple(entries),
        marketplace=detection.marketplace,
        previous_target=plan.previous_target,
        fallback_reason=plan.fallback_reason,
    )


def upstream_url(source: SourceConfig, commit_sha: str) -> str | None:
    """Web address of the tree at the indexed commit, for GitHub sources."""
    if not source.github:
        return None
    return f"{github_base_url()}/{source.github}/tree/{commit_sha}"


def clone(
    plan: SourcePlan,
    fetchers: Fetchers,
    previous: Mapping[ArtifactKey, CatalogEntry],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Scanned | FellBack | Failed:
    """Bare depth-1 clone, detection and extraction; transient failures retried with backoff.

    A GitHub source whose clone keeps failing falls back to the API path; any other source fails.
    """
    assert plan.selection is not None, "route the plan first"
    source = plan.source
    ref = plan.head.ref_name if plan.head else source.ref
    strategy = plan.selection.selected_strategy
    if plan.selection.fallback or strategy is Strategy.API:
        strategy = Strategy.SPARSE_MANIFEST
    timeline = Timeline(plan.cost)

    def attempt() -> Scanned:
        with ExitStack() as clone_dir:  # the clone's private directory, removed on every path
            with timeline.phase("clone") as phase:
                cloned = clone_dir.enter_context(
                    clone_source(
                        source.url,
                        ref=ref,
                        token=fetchers.token_for(source),
                        settings=fetchers.settings.clone,
                    )
                )
                phase.set(commit_sha=cloned.commit_sha, bytes_fetched=cloned.bytes_fetched)
            timeline.spend(clone_ms=cloned.clone_ms, bytes_fetched=cloned.bytes_fetched)
            return _scanned(plan, timeline, strategy, cloned.snapshot, previous)

    def on_retry(number: int, exc: BaseException, wait: float) -> None:
        _log(
            logging.WARNING,
            f"source {plan.key}: clone failed ({exc}); retry {number} in {wait:.1f} s",
            source=plan.key,
            event="clone_retry",
            retry=number,
            wait_s=round(wait, 1),
        )

    try:
        scanned = call_with_retries(
            attempt,
            policy=fetchers.settings.clone_retries,
            is_transient=lambda exc: isinstance(exc, CloneError) and exc.transient,
            on_retry=on_retry,
            sleep=sleep,
        )
    except CloneError as exc:
        spent = replace(plan, cost=timeline.cost())
        if source.github:
            reason = f"clone failed ({exc.reason}): {exc}"
            _log(
                logging.WARNING,
                f"source {plan.key}: {reason}; {FALLBACK_NEXT}",
                source=plan.key,
                event="clone_fallback",
                reason=exc.reason.value,
            )
            return FellBack(replace(spent, fallback_reason=reason), reason)
        _log(
            logging.ERROR,
            f"source {plan.key}: clone failed and it has no API fallback: {exc}; {FAILURE_NEXT}",
            source=plan.key,
            event="clone_failed",
            reason=exc.reason.value,
        )
        return failed(spent, str(exc))
    return replace(scanned, cost=timeline.cost())


# -- step 4: the GitHub API path ------------------------------------------------------------------


def read_over_api(
    routed: SourcePlan | FellBack,
    fetchers: Fetchers,
    previous: Mapping[ArtifactKey, CatalogEntry],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Scanned | Failed:
    """Tree and manifests over REST and raw reads, within the scan's call budget.

    A rate limit that resets within `max_rate_limit_wait_s` is waited out once.
    """
    plan = routed.plan if isinstance(routed, FellBack) else routed
    source = plan.source
    if not source.github:
        reason = f"{plan.key}: not a GitHub source, no API path"
        _log(
            logging.ERROR,
            f"source {plan.key}: {reason}; {FAILURE_NEXT}",
            source=plan.key,
            event="api_failed",
        )
        return failed(plan, reason)
    ref = plan.head.commit_sha if plan.head else source.ref
    timeline = Timeline(plan.cost)
    try:
        with timeline.phase("api") as phase:
            phase.set(fallback=plan.fallback_reason is not None)
            scanned = _read_with_one_wait(plan, fetchers, previous, ref, timeline, phase, sleep)
            phase.set(commit_sha=scanned.commit_sha)
    except ApiError as exc:
        _log(
            logging.ERROR,
            f"source {plan.key}: the GitHub API path failed: {exc}; {FAILURE_NEXT}",
            source=plan.key,
            event="api_failed",
        )
        return failed(replace(plan, cost=timeline.cost()), str(exc))
    return replace(scanned, cost=timeline.cost())


def _read_with_one_wait(
    plan: SourcePlan,
    fetchers: Fetchers,
    previous: Mapping[ArtifactKey, CatalogEntry],
    ref: str | None,
    timeline: Timeline,
    phase: OpenPhase,
    sleep: Callable[[float], None],
) -> Scanned:
    repo = plan.source.github
    assert repo is not None
    for attempt in range(2):
        stats = fetchers.github.start_scan(repo)
        try:
            snapshot = fetchers.github.fetch_snapshot(repo, ref, scan=stats)
            return _scanned(plan, timeline, Strategy.API, snapshot, previous)
        except RateLimited as exc:
            if attempt or exc.retry_after_s > fetchers.settings.max_rate_limit_wait_s:
                raise
            _log(
                logging.WARNING,
                f"source {plan.key}: GitHub rate limit, waiting {exc.retry_after_s:.0f} s until "
                f"{exc.reset_at.isoformat()} before one more try",
                source=plan.key,
                event="rate_limit_wait",
                wait_s=exc.retry_after_s,
            )
            phase.note("rate limited", wait_s=exc.retry_after_s)
            sleep(max(exc.retry_after_s, 0.0))
        finally:
            _spend_api(timeline, stats)
            phase.set(
                api_calls=int(phase.attributes.get("api_calls") or 0) + stats.rest_calls,
                raw_reads=int(phase.attributes.get("raw_reads") or 0) + stats.raw_reads,
            )
    raise AssertionError("unreachable: the loop returns or raises")


# -- step 5: the catalog write --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Written:
    """A source's end after its catalog transaction: `outcome` is `Failed` if the write failed."""

    outcome: SourceOutcome
    rows_affected: int
    write_ms: int


def write(catalog: Catalog, outcome: SourceOutcome) -> Written:
    """Store a scanned source in one transaction, or record why it is current or failed.

    A transaction that fails is rolled back and the source recorded as failed: one source's bad
    rows never lose another's work.
    """
    started = time.monotonic()
    timeline = Timeline(outcome.cost)
    rows = 0
    with timeline.phase("write") as phase:
        try:
            rows = _store(catalog, outcome)
        except Exception as exc:
            phase.fail(exc)
            reason = f"writing rows failed: {exc}"
            _log(
                logging.ERROR,
                f"source {outcome.source_key}: writing its rows failed: {exc}; "
                "the transaction was rolled back and its last good rows stay",
                source=outcome.source_key,
                event="write_failed",
            )
            outcome = Failed(
                source_key=outcome.source_key,
                reason=reason,
                strategy=outcome.strategy,
                previous_target=outcome.previous_target,
                fallback_reason=outcome.fallback_reason,
                cost=outcome.cost,
            )
            _store(catalog, outcome)
        phase.set(rows_affected=rows, artifact_count=outcome.artifact_count)
    return Written(replace(outcome, cost=timeline.cost()), rows, _ms_since(started))


def _store(catalog: Catalog, outcome: SourceOutcome) -> int:
    if isinstance(outcome, Scanned):
        return catalog.write_scan(
            outcome.source_key,
            outcome.entries,
            clone_target=outcome.target,
            api_calls=outcome.cost.api_calls,
            marketplace=outcome.marketplace,
            indexed_at=datetime.now(UTC),
        ).rows_affected
    if isinstance(outcome, Current):
        catalog.record_current(outcome.source_key, outcome.commit_sha, outcome.cost.api_calls)
    else:
        catalog.record_failure(outcome.source_key, outcome.reason, api_calls=outcome.cost.api_calls)
    return 0


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
