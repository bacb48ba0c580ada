"""Index one marketplace source, step by step (SPEC §1), with no Dagster import.

The steps are separate functions because the Dagster asset runs each as its own op over a batch
of sources: `resolve_source` (head via the git protocol, no REST call), `plan_scan` (strategy
selection), `scan_by_clone`, `scan_by_api` (the fallback), then the catalog write. `scan_source`
chains them for one source (the CLI's preview and tests).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from skillmeat_pipeline.lib.catalog.store import Catalog, SourceRecord, WriteResult
from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.models import CatalogEntry, Detection, TreeEntry, TreeSnapshot
from skillmeat_pipeline.lib.core.retry import BackoffPolicy, call_with_retries
from skillmeat_pipeline.lib.core.sources import SourceConfig, github_base_url
from skillmeat_pipeline.lib.core.strategy import (
    DEFAULT_MAX_CLONE_MB,
    CloneTarget,
    Strategy,
    StrategyInputs,
    StrategySelection,
    artifact_location,
    build_clone_target,
    select_strategy,
)
from skillmeat_pipeline.lib.fetch.git.clone import (
    CloneError,
    CloneSettings,
    RemoteHead,
    clone_source,
    libgit2_status,
    resolve_head,
)
from skillmeat_pipeline.lib.fetch.github.client import (
    ApiError,
    ErrorKind,
    GitHubClient,
    RateLimited,
    ScanStats,
)

logger = logging.getLogger(__name__)


class ScanStatus(StrEnum):
    SCANNED = "scanned"  # rows written from a fresh read of the tree
    CURRENT = "current"  # the head is the indexed commit: nothing fetched
    FAILED = "failed"  # every way in failed; the last good rows stay


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


AttributeValue = str | int | float | bool | None  # None: not known, left out of spans


@dataclass(slots=True)
class Phase:
    """One step of a scan on the wall clock (`time.time_ns()`), for its trace (lib/telemetry.py).

    A source's steps run in different ops and threads, so its timeline travels with it as data and
    its whole span tree is emitted when its rows are written.
    """

    name: str  # resolve, select, clone, extract, api, write
    start_ns: int
    parent: int | None = None  # index of the enclosing phase in `ScanCost.phases`
    end_ns: int | None = None
    error: str | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    events: list[tuple[int, str, dict[str, AttributeValue]]] = field(default_factory=list)

    def finish(
        self, error: BaseException | str | None = None, **attributes: AttributeValue
    ) -> None:
        """End the phase; a phase that already ended is left as it is."""
        if self.end_ns is not None:
            return
        self.end_ns = time.time_ns()
        if error is not None:
            self.error = str(error) or type(error).__name__
        self.attributes.update(attributes)

    def note(self, name: str, **attributes: AttributeValue) -> None:
        """Something that happened during the phase (a rate-limit wait): a span event."""
        self.events.append((time.time_ns(), name, attributes))


@dataclass(slots=True)
class ScanCost:
    """What a scan spent. The numbers are Dagster metadata values of the partition (SPEC §7);
    `phases` (its timeline) and `responses` (GitHub requests by status class) feed telemetry."""

    api_calls: int = 0
    raw_reads: int = 0
    bytes_fetched: int = 0
    resolve_ms: int = 0
    select_ms: int = 0
    clone_ms: int = 0
    extract_ms: int = 0
    started_ns: int = field(default_factory=time.time_ns)
    phases: list[Phase] = field(default_factory=list)
    responses: dict[tuple[str, str], int] = field(default_factory=dict)

    def add_api(self, stats: ScanStats) -> None:
        self.api_calls += stats.rest_calls
        self.raw_reads += stats.raw_reads
        self.bytes_fetched += stats.bytes_fetched
        for key, count in stats.responses.items():
            self.responses[key] = self.responses.get(key, 0) + count

    def busy_ns(self) -> int:
        """Time spent on this source itself: its top-level steps, not its waits between ops.

        In a batch every source waits for the whole batch at each op, so wall time since the
        start would give every source of a run the same total.
        """
        return sum(
            p.end_ns - p.start_ns for p in self.phases if p.parent is None and p.end_ns is not None
        )

    def begin(self, name: str) -> Phase:
        """Start a phase inside the innermost phase still open (a source's steps run in turn)."""
        still_open = (i for i in reversed(range(len(self.phases))) if self.phases[i].end_ns is None)
        phase = Phase(name, time.time_ns(), parent=next(still_open, None))
        self.phases.append(phase)
        return phase


@contextmanager
def _phase(cost: ScanCost, name: str) -> Iterator[Phase]:
    phase = cost.begin(name)
    try:
        yield phase
    except BaseException as exc:
        phase.finish(error=exc)
        raise
    phase.finish()


@dataclass(slots=True)
class SourcePlan:
    """A source on its way through the ops: what is known before fetching its tree."""

    source: SourceConfig
    indexed_commit: str | None
    clone_target: CloneTarget | None
    head: RemoteHead | None = None
    clone_unusable_reason: str | None = None  # set when the git side already failed
    selection: StrategySelection | None = None
    fallback_reason: str | None = None  # why the API path serves a source that would be cloned
    cost: ScanCost = field(default_factory=ScanCost)

    @property
    def key(self) -> str:
        return self.source.key


@dataclass(slots=True)
class ScanResult:
    """One source's outcome: rows to write, or why there are none."""

    source_key: str
    status: ScanStatus
    strategy: Strategy | None = None
    commit_sha: str | None = None
    tree_sha: str | None = None
    entries: list[CatalogEntry] = field(default_factory=list)
    clone_target: CloneTarget | None = None
    marketplace: dict[str, Any] | None = None
    fallback_reason: str | None = None
    error: str | None = None
    previous_target: CloneTarget | None = None  # what the last good index stored
    cost: ScanCost = field(default_factory=ScanCost)

    @property
    def artifact_count(self) -> int:
        if self.status is ScanStatus.SCANNED:
            return len(self.entries)
        return self.clone_target.artifact_count if self.clone_target else 0


def count_collapsed(previous: CloneTarget | None, current: CloneTarget | None) -> bool:
    """Did the artifact count drop by more than half while the tree detection read did not shrink?

    A shrunk tree explains fewer artifacts; an unchanged one points at a detection regression.
    """
    if previous is None or current is None or previous.artifact_count == 0:
        return False
    tree_shrank = (
        previous.tree_entry_count is not None
        and current.tree_entry_count is not None
        and current.tree_entry_count < previous.tree_entry_count
    )
    return current.artifact_count * 2 < previous.artifact_count and not tree_shrank


@dataclass(slots=True)
class Fetchers:
    """Where trees come from: libgit2 (token for GitHub hosts only) and the GitHub API."""

    github: GitHubClient
    token: str | None = None
    settings: ScanSettings = field(default_factory=ScanSettings)

    def token_for(self, source: SourceConfig) -> str | None:
        return self.token if source.github else None


def _ms_since(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


def new_plan(source: SourceConfig, record: SourceRecord | None) -> SourcePlan:
    """Start a source's plan from what the catalog holds of its last index.

    The catalog forgets the indexed commit when a source's configuration changes, so a changed
    `root_hint` or `exclude` is re-indexed even though the head did not move.
    """
    return SourcePlan(
        source=source,
        indexed_commit=record.last_indexed_commit_sha if record else None,
        clone_target=record.clone_target if record else None,
    )


# -- step 1: resolve the head ---------------------------------------------------------------------


def resolve_source(plan: SourcePlan, fetchers: Fetchers) -> bool:
    """Find the head commit over the git protocol; True when it is already indexed.

    A git side that cannot be reached is not fatal for a GitHub source: the reason is kept and
    the API takes over in the later steps.
    """
    started = time.monotonic()
    phase = plan.cost.begin("resolve")
    status = libgit2_status()
    if not status.usable:
        plan.clone_unusable_reason = f"libgit2 unusable: {status.problem}"
    else:
        try:
            plan.head = resolve_head(
                plan.source.url,
                plan.source.ref,
                token=fetchers.token_for(plan.source),
                settings=fetchers.settings.clone,
            )
        except CloneError as exc:
            phase.finish(error=exc)
            if not plan.source.github:
                raise
            plan.clone_unusable_reason = f"git head lookup failed ({exc.reason}): {exc}"
            logger.warning(
                "source %s: %s; falling back to the GitHub API",
                plan.key,
                plan.clone_unusable_reason,
            )
    plan.cost.resolve_ms = _ms_since(started)
    if plan.head is not None:
        phase.finish(commit_sha=plan.head.commit_sha, ref=plan.head.ref_name)
    phase.finish(error=plan.clone_unusable_reason)
    return (
        not fetchers.settings.force
        and plan.head is not None
        and plan.indexed_commit is not None
        and plan.head.commit_sha == plan.indexed_commit
    )


# -- step 2: select a strategy ---------------------------------------------------------------------


class _ListingOnly:
    """A snapshot that answers every read with nothing: counts artifacts from paths alone.

    Used to size a first index of a GitHub source from one tree call without reading any blob;
    JSON-declared artifacts (MCP servers, inline hooks) are not counted, so the count is a floor.
    """

    def __init__(self, snapshot: TreeSnapshot) -> None:
        self.commit_sha = snapshot.commit_sha
        self.tree_sha = snapshot.tree_sha
        self.entries = snapshot.entries

    def read_blob(self, entry: TreeEntry) -> bytes:
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


def plan_scan(plan: SourcePlan, fetchers: Fetchers) -> StrategySelection:
    """Choose the strategy (SPEC §4) and log the structured selection record."""
    started = time.monotonic()
    phase = plan.cost.begin("select")
    source, settings = plan.source, fetchers.settings
    artifact_paths: list[str] | None = None
    manifest_paths: list[str] = []
    repo_size_mb: float | None = None
    if plan.clone_target is not None:
        artifact_paths = plan.clone_target.artifact_paths
        manifest_paths = plan.clone_target.patterns
    elif source.github and plan.clone_unusable_reason is None:
        # First index of a GitHub source: size it from the repository and one tree call.
        stats: ScanStats | None = None
        try:
            stats = fetchers.github.start_scan(source.github)
            repo_size_mb = fetchers.github.repository(source.github, scan=stats).size / 1024
            ref = plan.head.commit_sha if plan.head else source.ref
            tree = fetchers.github.fetch_snapshot(source.github, ref, scan=stats)
            estimate = _detect(_ListingOnly(tree), source)
            artifact_paths = [a.path for a in estimate.artifacts]
            manifest_paths = _manifest_paths(estimate)
        except ApiError as exc:
            # Not knowing the count only means a clone decides it.
            logger.warning(
                "source %s: could not size the repository over the API (%s); cloning to count",
                plan.key,
                exc,
            )
            phase.note("sizing failed", error=str(exc))
        finally:
            # calls that failed were spent too
            if stats is not None:
                plan.cost.add_api(stats)
                phase.attributes["api_calls"] = stats.rest_calls
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
    plan.selection = selection
    plan.cost.select_ms = _ms_since(started)
    phase.finish(
        selected_strategy=selection.selected_strategy.value,
        patterns_count=selection.patterns_count,
        artifact_count=selection.artifact_count,  # None: unknown until cloned
        reason=selection.reason,
        fallback=selection.fallback,
    )
    level = logging.WARNING if selection.fallback else logging.INFO
    record = selection.log_record()
    logger.log(level, "strategy selected: %s", record, extra={"record": record})
    return selection


# -- step 3: clone and extract ---------------------------------------------------------------------


def _build_result(
    plan: SourcePlan,
    strategy: Strategy,
    snapshot: TreeSnapshot,
    previous: Mapping[str, CatalogEntry],
    upstream_url: str | None,
) -> ScanResult:
    started = time.monotonic()
    with _phase(plan.cost, "extract") as phase:
        detection = _detect(snapshot, plan.source)
        entries = extract_catalog_entries(
            snapshot,
            detection,
            source_key=plan.key,
            upstream_url=upstream_url,
            deep_indexing=plan.source.deep_indexing,
            previous=previous,
        )
        phase.finish(
            artifact_count=len(entries),
            success_count=sum(1 for e in entries if not e.problems),
        )
    plan.cost.extract_ms += _ms_since(started)
    target = build_clone_target(
        strategy,
        [e.path for e in entries],
        _manifest_paths(detection),
        commit_sha=snapshot.commit_sha,
        tree_sha=snapshot.tree_sha,
        tree_entry_count=len(snapshot.entries),
    )
    return ScanResult(
        source_key=plan.key,
        status=ScanStatus.SCANNED,
        strategy=strategy,
        commit_sha=snapshot.commit_sha,
        tree_sha=snapshot.tree_sha,
        entries=entries,
        clone_target=target,
        marketplace=detection.marketplace,
        previous_target=plan.clone_target,
        cost=plan.cost,
    )


def upstream_url(source: SourceConfig, commit_sha: str) -> str | None:
    """Web address of the tree at the indexed commit, for GitHub sources."""
    if not source.github:
        return None
    return f"{github_base_url()}/{source.github}/tree/{commit_sha}"


def scan_by_clone(
    plan: SourcePlan,
    fetchers: Fetchers,
    previous: Mapping[str, CatalogEntry],
    *,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> ScanResult:
    """Bare depth-1 clone, detection and extraction; transient failures retried with backoff.

    Raises `CloneError` once retries are exhausted or the failure is permanent.
    """
    assert plan.selection is not None
    source = plan.source
    ref = plan.head.ref_name if plan.head else source.ref

    def attempt() -> ScanResult:
        with (
            _phase(plan.cost, "clone") as phase,
            clone_source(
                source.url,
                ref=ref,
                token=fetchers.token_for(source),
                settings=fetchers.settings.clone,
            ) as cloned,
        ):
            phase.finish(commit_sha=cloned.commit_sha, bytes_fetched=cloned.bytes_fetched)
            plan.cost.clone_ms += cloned.clone_ms
            plan.cost.bytes_fetched += cloned.bytes_fetched
            strategy = plan.selection.selected_strategy
            if plan.selection.fallback or strategy is Strategy.API:
                strategy = Strategy.SPARSE_MANIFEST
            return _build_result(
                plan, strategy, cloned.snapshot, previous, upstream_url(source, cloned.commit_sha)
            )

    return call_with_retries(
        attempt,
        policy=fetchers.settings.clone_retries,
        is_transient=lambda exc: isinstance(exc, CloneError) and exc.transient,
        on_retry=on_retry,
    )


# -- step 4: the GitHub API path -------------------------------------------------------------------


def scan_by_api(
    plan: SourcePlan,
    fetchers: Fetchers,
    previous: Mapping[str, CatalogEntry],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> ScanResult:
    """Tree and manifests over REST and raw reads, within the scan's call budget.

    A rate limit that resets within `max_rate_limit_wait_s` is waited out once; otherwise the
    `RateLimited` error (with its reset time) is raised.
    """
    source = plan.source
    if not source.github:
        raise ApiError(f"{plan.key}: not a GitHub source, no API path", kind=ErrorKind.PERMANENT)
    ref = plan.head.commit_sha if plan.head else source.ref
    with _phase(plan.cost, "api") as phase:
        phase.attributes["fallback"] = plan.fallback_reason is not None
        for attempt in range(2):
            try:
                stats = fetchers.github.start_scan(source.github)
                try:
                    snapshot = fetchers.github.fetch_snapshot(source.github, ref, scan=stats)
                    result = _build_result(
                        plan,
                        Strategy.API,
                        snapshot,
                        previous,
                        upstream_url(source, snapshot.commit_sha),
                    )
                finally:
                    plan.cost.add_api(stats)
                    phase.attributes["api_calls"] = (
                        int(phase.attributes.get("api_calls", 0)) + stats.rest_calls
                    )
                    phase.attributes["raw_reads"] = (
                        int(phase.attributes.get("raw_reads", 0)) + stats.raw_reads
                    )
                result.fallback_reason = plan.fallback_reason
                phase.finish(commit_sha=snapshot.commit_sha)
                return result
            except RateLimited as exc:
                if attempt or exc.retry_after_s > fetchers.settings.max_rate_limit_wait_s:
                    raise
                logger.warning(
                    "source %s: GitHub rate limit, waiting %.0f s until %s before one more try",
                    plan.key,
                    exc.retry_after_s,
                    exc.reset_at.isoformat(),
                )
                phase.note("rate limited", wait_s=exc.retry_after_s)
                sleep(max(exc.retry_after_s, 0.0))
    raise AssertionError("unreachable: the loop returns or raises")


# -- step 5: the catalog write ---------------------------------------------------------------------


def write_result(catalog: Catalog, result: ScanResult) -> WriteResult | None:
    """Store a scanned source in one transaction, or record why it is current or failed."""
    if result.status is ScanStatus.SCANNED:
        assert result.clone_target is not None and result.strategy is not None
        return catalog.write_scan(
            result.source_key,
            result.entries,
            commit_sha=result.commit_sha or "",
            tree_sha=result.tree_sha or "",
            clone_target=result.clone_target,
            strategy=result.strategy,
            api_calls=result.cost.api_calls,
            marketplace=result.marketplace,
            indexed_at=datetime.now(UTC),
        )
    if result.status is ScanStatus.CURRENT:
        catalog.record_current(result.source_key, result.commit_sha or "", result.cost.api_calls)
    else:
        catalog.record_failure(
            result.source_key, result.error or "failed", api_calls=result.cost.api_calls
        )
    return None


def current_result(plan: SourcePlan) -> ScanResult:
    assert plan.head is not None and plan.clone_target is not None
    return ScanResult(
        source_key=plan.key,
        status=ScanStatus.CURRENT,
        strategy=plan.clone_target.strategy,
        commit_sha=plan.head.commit_sha,
        tree_sha=plan.clone_target.tree_sha,
        clone_target=plan.clone_target,
        previous_target=plan.clone_target,
        cost=plan.cost,
    )


def failed_result(
    plan: SourcePlan, error: str, *, fallback_reason: str | None = None
) -> ScanResult:
    return ScanResult(
        source_key=plan.key,
        status=ScanStatus.FAILED,
        strategy=plan.selection.selected_strategy if plan.selection else None,
        error=error,
        fallback_reason=plan.fallback_reason,
        previous_target=plan.clone_target,
        cost=plan.cost,
    )


def scan_source(
    source: SourceConfig,
    fetchers: Fetchers,
    *,
    record: SourceRecord | None = None,
    previous: Mapping[str, CatalogEntry] | None = None,
) -> ScanResult:
    """All steps for one source, with the same fallbacks as the asset (used by previews)."""
    plan = new_plan(source, record)
    try:
        if resolve_source(plan, fetchers):
            return current_result(plan)
    except CloneError as exc:
        return failed_result(plan, str(exc))
    selection = plan_scan(plan, fetchers)
    if selection.fallback:
        plan.fallback_reason = selection.reason
    if selection.selected_strategy is not Strategy.API:
        try:
            return scan_by_clone(plan, fetchers, previous or {})
        except CloneError as exc:
            if not source.github:
                return failed_result(plan, str(exc))
            plan.fallback_reason = clone_fallback_reason(plan, exc)
    try:
        return scan_by_api(plan, fetchers, previous or {})
    except ApiError as exc:
        return failed_result(plan, str(exc))


def clone_fallback_reason(plan: SourcePlan, exc: CloneError) -> str:
    """The reason a GitHub source leaves the clone path, logged as a WARNING."""
    reason = f"clone failed ({exc.reason}): {exc}"
    logger.warning("source %s: %s; falling back to the GitHub API", plan.key, reason)
    return reason
