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

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from skillmeat_pipeline.lib.catalog.errors import (
    ScanSupersededError,
    StaleHeadError,
    UnknownSourceError,
)
from skillmeat_pipeline.lib.catalog.records import SourceRecord
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.detection import (
    DEFAULT_IGNORED_SEGMENTS,
    detect_artifacts,
)
from skillmeat_pipeline.lib.core.environment import number_from_env
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.files import BINARY_SUFFIXES, artifact_file_paths
from skillmeat_pipeline.lib.core.models import (
    ArtifactKey,
    CatalogEntry,
    Detection,
    TreeEntry,
    TreeSnapshot,
)
from skillmeat_pipeline.lib.core.plugin_sources import PluginSourceConfig, plugin_sources
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
from skillmeat_pipeline.lib.core.untrusted import (
    TreeTooLargeError,
    printable,
    screen_snapshot,
)
from skillmeat_pipeline.lib.fetch.git.clone import (
    CloneSettings,
    RemoteHead,
    clone_source,
    libgit2_status,
    resolve_head,
)
from skillmeat_pipeline.lib.fetch.git.errors import CloneError
from skillmeat_pipeline.lib.fetch.github.archive import MB, ArchiveSettings, read_archive
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.fetch.github.errors import ApiError, RateLimited
from skillmeat_pipeline.lib.fetch.github.http import ScanStats
from skillmeat_pipeline.lib.fetch.github.snapshot import ApiTreeSnapshot
from skillmeat_pipeline.lib.scan.artifacts import index_tree
from skillmeat_pipeline.lib.scan.cost import OpenPhase, Timeline
from skillmeat_pipeline.lib.scan.outcomes import (
    Current,
    Failed,
    FellBack,
    Scanned,
    SourceOutcome,
    SourcePlan,
    Superseded,
    failed,
)
from skillmeat_pipeline.lib.trust.scan import MAX_FILE_BYTES

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
    # the API path: the archive above `archive.threshold` planned reads, else this many raw reads
    # at a time
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    raw_read_workers: int = 8
    # each archive attempt is one REST call: 2 for the tree + 3 stays far below the budget of 10
    archive_retries: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=10.0)
    )

    @classmethod
    def from_env(cls, **overrides: Any) -> ScanSettings:
        """`SKILLMEAT_MAX_CLONE_MB`, the clone's variables and the archive's:
        `SKILLMEAT_ARCHIVE_THRESHOLD`, `SKILLMEAT_ARCHIVE_TIMEOUT_SECONDS` (default: the clone's
        `CLONE_TIMEOUT_SECONDS`) and `SKILLMEAT_MAX_ARCHIVE_MB`."""
        env = os.environ
        clone = CloneSettings.from_env()
        defaults = ArchiveSettings()
        archive = ArchiveSettings(
            threshold=number_from_env(
                env, "SKILLMEAT_ARCHIVE_THRESHOLD", int, defaults.threshold, allow_zero=True
            ),
            timeout_s=number_from_env(
                env, "SKILLMEAT_ARCHIVE_TIMEOUT_SECONDS", float, clone.timeout_s, allow_zero=False
            ),
            max_bytes=round(
                number_from_env(
                    env,
                    "SKILLMEAT_MAX_ARCHIVE_MB",
                    float,
                    defaults.max_bytes / MB,
                    allow_zero=False,
                )
                * MB
            ),
        )
        settings = cls(
            clone=clone,
            max_clone_mb=number_from_env(
                env, "SKILLMEAT_MAX_CLONE_MB", float, float(DEFAULT_MAX_CLONE_MB), allow_zero=True
            ),
            archive=archive,
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
    # messages quote paths and errors that come from repositories: never raw control characters
    logger.log(
        level,
        printable(message),
        extra={"record": {"source": source, "event": event, **fields}},
        stacklevel=2,
    )


def _ms_since(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


def pinned_commit(source: SourceConfig) -> str | None:
    """The commit a plugin source is pinned to (its entry's `sha`), or None: follow the ref."""
    return source.pinned_commit if isinstance(source, PluginSourceConfig) else None


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
        return Current(
            plan.key,
            head.commit_sha,
            plan.previous_target,
            cost=plan.cost,
            base_version=plan.base_version,
        )
    return plan


# -- step 2: route (select a strategy) ------------------------------------------------------------


class _ListingOnly:
    """A snapshot that answers every read with nothing, noting what was asked for.

    Used to size a first index of a GitHub source from one tree call without reading any blob
    (JSON-declared artifacts, MCP servers and inline hooks, are not counted, so the count is a
    floor), and to find what a scan over the API will read before it reads it (`_ReadAhead`).
    """

    def __init__(self, snapshot: TreeSnapshot) -> None:
        self.commit_sha = snapshot.commit_sha
        self.tree_sha = snapshot.tree_sha
        self.entries = snapshot.entries
        self.asked: dict[str, TreeEntry] = {}

    def read_blob(self, entry: TreeEntry) -> bytes:
        self.asked.setdefault(entry.path, entry)
        return b""


def _plugin_entry(source: SourceConfig) -> dict[str, Any] | None:
    """The marketplace entry a plugin source's root is the plugin of (None: not a plugin source)."""
    if not isinstance(source, PluginSourceConfig):
        return None
    return source.entry or {"name": source.plugin}


def _detect(snapshot: TreeSnapshot, source: SourceConfig) -> Detection:
    return detect_artifacts(
        snapshot,
        root_hint=source.root_hint,
        exclude=source.exclude,
        repo_name=source.github or source.key,
        plugin_entry=_plugin_entry(source),
    )


def _manifest_paths(detection: Detection) -> list[str]:
    return [a.manifest_path or artifact_location(a.path) for a in detection.artifacts]


def _spend_api(timeline: Timeline, stats: ScanStats) -> None:
    timeline.spend(
        api_calls=stats.api_calls,
        raw_reads=stats.raw_reads,
        archive_bytes=stats.archive_bytes,
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
                estimate = _detect(_ListingOnly(screen_snapshot(tree)), source)
                artifact_paths = [a.path for a in estimate.artifacts]
                manifest_paths = _manifest_paths(estimate)
            except (ApiError, TreeTooLargeError) as exc:
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


# -- step 3: clone and extract --------------------------------------------------------------------


def _scanned(
    plan: SourcePlan,
    timeline: Timeline,
    strategy: Strategy,
    snapshot: TreeSnapshot,
    previous: Mapping[ArtifactKey, CatalogEntry],
    read_ahead: Callable[[Detection], None] | None = None,
) -> Scanned:
    """Detection, extraction and findings of a fetched tree, as the outcome of `plan` (cost
    added later). `read_ahead` is given the detection before extraction reads anything."""
    source = plan.source
    with timeline.phase("extract") as phase:
        indexed = index_tree(
            snapshot,
            source_key=plan.key,
            repo_name=source.github or source.key,
            root_hint=source.root_hint,
            exclude=source.exclude,
            upstream_url=upstream_url(source, snapshot.commit_sha),
            deep_indexing=source.deep_indexing,
            previous=previous,
            plugin_entry=_plugin_entry(source),
            read_ahead=read_ahead,
        )
        detection, entries, screened = indexed.detection, indexed.entries, indexed.screened
        marketplace = _with_plugin_source_problems(plan.key, source, detection.marketplace)
        if screened.skipped:
            phase.note("paths skipped", count=len(screened.skipped))
            _log(
                logging.WARNING,
                f"source {plan.key}: {len(screened.skipped)} path(s) of the tree cannot be indexed "
                f"and were skipped with what is below them, first "
                f"{screened.skipped[0].message()}; recorded as problems, the rest is indexed",
                source=plan.key,
                event="paths_skipped",
                skipped=len(screened.skipped) + screened.skipped_below,
            )
        phase.set(
            artifact_count=len(entries),
            success_count=sum(1 for e in entries if not e.problems),
            findings_ms=indexed.findings.findings_ms,
            findings_files=indexed.findings.files,
            blob_reads=indexed.blob_reads,
        )
    timeline.spend(extract_ms=indexed.extract_ms, findings_ms=indexed.findings.findings_ms)
    target = build_clone_target(
        strategy,
        [e.path for e in entries],
        _manifest_paths(detection),
        commit_sha=snapshot.commit_sha,
        tree_sha=snapshot.tree_sha,
        tree_entry_count=len(screened.entries),
    )
    return Scanned(
        source_key=plan.key,
        target=target,
        entries=tuple(entries),
        marketplace=marketplace,
        previous_target=plan.previous_target,
        fallback_reason=plan.fallback_reason,
        base_version=plan.base_version,
        problems=tuple(indexed.problems),
    )


def _with_plugin_source_problems(
    key: str, source: SourceConfig, marketplace: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The marketplace records with the problems of their entries (invalid or duplicate names,
    entries over the bound) recorded on them, each logged once, here where it is found."""
    if not marketplace:
        return marketplace
    found = plugin_sources(source, marketplace)
    for problem in found.problems:
        _log(
            logging.WARNING,
            f"marketplace {key}: {problem}; the other entries are indexed",
            source=key,
            event="marketplace_entry_problem",
        )
    if not found.problems:
        return marketplace
    return {**marketplace, "problems": list(found.problems)}


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
    return clone_together([plan], fetchers, lambda _key: previous, sleep=sleep)[0]


def fetch_key(plan: SourcePlan) -> tuple[str, str]:
    """What a clone fetches: the repository and the commit (its head, or the plan's own key
    when the head is unknown, so that such plans are never merged)."""
    source = plan.source
    if plan.head is None:
        return (source.url, f"?{plan.key}")
    # GitHub names are case-insensitive; other servers' paths may not be
    where = source.github.lower() if source.github else source.url.rstrip("/").removesuffix(".git")
    return (where, plan.head.commit_sha)


def clone_batch(
    plans: Sequence[SourcePlan],
    fetchers: Fetchers,
    previous_of: Callable[[str], Mapping[ArtifactKey, CatalogEntry]],
    map_bounded: Callable[
        [Callable[[list[SourcePlan]], list[Scanned | FellBack | Failed]], list[list[SourcePlan]]],
        list[list[Scanned | FellBack | Failed]],
    ],
) -> list[Scanned | FellBack | Failed]:
    """Every plan of a batch cloned, each repository commit once (SPEC §2.1): the plans that
    share one (many git-subdir entries into one repository) are detected on one clone.
    Outcomes come back in the order of `plans`."""
    groups: dict[tuple[str, str], list[SourcePlan]] = {}
    for plan in plans:
        groups.setdefault(fetch_key(plan), []).append(plan)
    ended = map_bounded(
        lambda group: clone_together(group, fetchers, previous_of), list(groups.values())
    )
    by_key = {
        (o.key if isinstance(o, FellBack) else o.source_key): o for group in ended for o in group
    }
    return [by_key[plan.key] for plan in plans]


def clone_together(
    plans: Sequence[SourcePlan],
    fetchers: Fetchers,
    previous_of: Callable[[str], Mapping[ArtifactKey, CatalogEntry]],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Scanned | FellBack | Failed]:
    """One clone of the repository commit the `plans` share, each plan detected on it.

    A plan that follows a ref leads (a server may refuse fetching a commit by id; a pinned plan
    leads only a group of pins). The leader pays the clone (its cost and metadata show the fetch);
    the others record a shared clone of no bytes. A failure ends every plan the same way.
    """
    assert plans and all(p.selection is not None for p in plans), "route the plans first"
    first = next((p for p in plans if pinned_commit(p.source) is None), plans[0])
    source = first.source
    pin = pinned_commit(source)
    ref = first.head.ref_name if first.head and pin is None else source.ref
    timelines = {plan.key: Timeline(plan.cost) for plan in plans}

    def strategy_of(plan: SourcePlan) -> Strategy:
        assert plan.selection is not None
        if plan.selection.fallback or plan.selection.selected_strategy is Strategy.API:
            return Strategy.SPARSE_MANIFEST
        return plan.selection.selected_strategy

    def attempt() -> list[Scanned]:
        with ExitStack() as clone_dir:  # the clone's private directory, removed on every path
            with timelines[first.key].phase("clone") as phase:
                cloned = clone_dir.enter_context(
                    clone_source(
                        source.url,
                        ref=ref,
                        token=fetchers.token_for(source),
                        settings=fetchers.settings.clone,
                        commit=pin,
                    )
                )
                phase.set(commit_sha=cloned.commit_sha, bytes_fetched=cloned.bytes_fetched)
            timelines[first.key].spend(clone_ms=cloned.clone_ms, bytes_fetched=cloned.bytes_fetched)
            for plan in plans:
                if plan is first:
                    continue
                with timelines[plan.key].phase("clone") as phase:
                    phase.set(commit_sha=cloned.commit_sha, shared_with=first.key)
            return [
                _scanned(
                    plan,
                    timelines[plan.key],
                    strategy_of(plan),
                    cloned.snapshot,
                    previous_of(plan.key),
                )
                for plan in plans
            ]

    def on_retry(number: int, exc: BaseException, wait: float) -> None:
        for plan in plans:
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
    except TreeTooLargeError as exc:
        # the same tree over the API would be as large: no fallback
        return [_too_large(replace(p, cost=timelines[p.key].cost()), exc) for p in plans]
    except CloneError as exc:
        return [_clone_failed(replace(p, cost=timelines[p.key].cost()), exc) for p in plans]
    return [replace(o, cost=timelines[o.source_key].cost()) for o in scanned]


def _clone_failed(spent: SourcePlan, exc: CloneError) -> FellBack | Failed:
    if spent.source.github:
        reason = f"clone failed ({exc.reason}): {exc}"
        _log(
            logging.WARNING,
            f"source {spent.key}: {reason}; {FALLBACK_NEXT}",
            source=spent.key,
            event="clone_fallback",
            reason=exc.reason.value,
        )
        return FellBack(replace(spent, fallback_reason=reason), reason)
    _log(
        logging.ERROR,
        f"source {spent.key}: clone failed and it has no API fallback: {exc}; {FAILURE_NEXT}",
        source=spent.key,
        event="clone_failed",
        reason=exc.reason.value,
    )
    return failed(spent, str(exc))


# -- step 4: the GitHub API path ------------------------------------------------------------------


def read_over_api(
    routed: SourcePlan | FellBack,
    fetchers: Fetchers,
    previous: Mapping[ArtifactKey, CatalogEntry],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Scanned | Failed:
    """Tree over REST, files from the archive or raw reads (`_ReadAhead`), within the budget.

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
    except TreeTooLargeError as exc:
        return _too_large(replace(plan, cost=timeline.cost()), exc)
    except ApiError as exc:
        pin = pinned_commit(source)
        reason = f"pinned commit {pin} could not be read: {exc}" if pin else str(exc)
        _log(
            logging.ERROR,
            f"source {plan.key}: the GitHub API path failed: {reason}; {FAILURE_NEXT}",
            source=plan.key,
            event="api_failed",
        )
        return failed(replace(plan, cost=timeline.cost()), reason)
    return replace(scanned, cost=timeline.cost())


def _too_large(plan: SourcePlan, exc: TreeTooLargeError) -> Failed:
    reason = f"source {plan.key}: {exc}"
    _log(
        logging.ERROR,
        f"{reason}; {FAILURE_NEXT}",
        source=plan.key,
        event="tree_too_large",
        limit=exc.limit,
    )
    return failed(plan, reason)


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
            reader = _ReadAhead(plan, fetchers, snapshot, previous, phase, sleep)
            reader.before_detection()
            return _scanned(
                plan, timeline, Strategy.API, snapshot, previous, reader.before_extraction
            )
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
                api_calls=int(phase.attributes.get("api_calls") or 0) + stats.api_calls,
                raw_reads=int(phase.attributes.get("raw_reads") or 0) + stats.raw_reads,
                archive_bytes=int(phase.attributes.get("archive_bytes") or 0) + stats.archive_bytes,
            )
    raise AssertionError("unreachable: the loop returns or raises")


class _ReadAhead:
    """Reads the files a scan over the API will ask for before it asks, from memory afterwards.

    Twice: before detection, what a detection of the listing alone reads and what extraction of
    its artifacts would read; before extraction, what extraction of the real detection reads that
    is not read yet. When the scan's raw reads would exceed `archive.threshold`, the repository
    archive is read instead (once per scan; it also keeps the symlinks and the Markdown below
    plugin folders, which covers what the listing alone cannot predict: where symlinks lead, the
    agents a `plugin.json` lists); otherwise they are raw reads, `raw_read_workers` at a time.
    Anything still missing is a raw read when asked for.
    """

    def __init__(
        self,
        plan: SourcePlan,
        fetchers: Fetchers,
        snapshot: ApiTreeSnapshot,
        previous: Mapping[ArtifactKey, CatalogEntry],
        phase: OpenPhase,
        sleep: Callable[[float], None],
    ) -> None:
        self.plan = plan
        self.settings = fetchers.settings
        self.snapshot = snapshot
        # only paths that can be indexed are planned (`index_tree` screens the same way)
        self.screened = screen_snapshot(snapshot)
        self.previous = previous
        self.phase = phase
        self.sleep = sleep
        self.archive_read = False

    def before_detection(self) -> None:
        listing = _ListingOnly(self.screened)
        self._read(self._planned(listing, _detect(listing, self.plan.source)))

    def before_extraction(self, detection: Detection) -> None:
        self._read(self._planned(_ListingOnly(self.screened), detection))

    def _planned(self, listing: _ListingOnly, detection: Detection) -> list[TreeEntry]:
        """What extraction and the trust rules will read after `detection` (and what `listing`
        was already asked for): it depends on paths and `previous`, not on file contents."""
        entries = extract_catalog_entries(
            listing,
            detection,
            source_key=self.plan.key,
            deep_indexing=self.plan.source.deep_indexing,
            previous=self.previous,
        )
        wanted = dict(listing.asked)
        # the trust rules read the text files of every entry without stored findings
        blobs = {e.path: e for e in self.screened.entries if e.is_blob}
        blob_paths = sorted(blobs)
        for entry in entries:
            if entry.findings is not None:
                continue
            for path in artifact_file_paths(entry, blob_paths):
                size = self.snapshot.size_of(blobs[path])
                if size is None or size <= MAX_FILE_BYTES:
                    wanted.setdefault(path, blobs[path])
        return list(wanted.values())

    def _read(self, entries: list[TreeEntry]) -> None:
        missing = [e for e in entries if e.path not in self.snapshot.read_ahead]
        # the threshold bounds the raw reads of the whole scan, both rounds together
        planned = self.snapshot.stats.raw_reads + len(missing)
        if planned > self.settings.archive.threshold and not self.archive_read:
            self.archive_read = True
            self._read_archive(missing)
            missing = [e for e in missing if e.path not in self.snapshot.read_ahead]
        self.phase.set(fetch="archive" if self.archive_read else "raw")
        self.snapshot.prefetch(missing, workers=self.settings.raw_read_workers)

    def _read_archive(self, entries: list[TreeEntry]) -> None:
        key = self.plan.key
        # what the listing cannot predict (where symlinks lead, the agents a `plugin.json` lists,
        # the folders of marketplace entries, so the files the trust rules read there): the
        # archive keeps every file a scan could read, bounded by `archive.max_kept_bytes`
        extras = [
            e
            for e in self.screened.entries
            if (
                e.is_symlink
                or (
                    e.is_blob
                    and not e.path.lower().endswith(BINARY_SUFFIXES)
                    and (self.snapshot.size_of(e) or 0) <= MAX_FILE_BYTES
                )
            )
            and not DEFAULT_IGNORED_SEGMENTS.intersection(e.path.split("/"))
        ]

        def on_retry(number: int, exc: BaseException, wait: float) -> None:
            _log(
                logging.WARNING,
                f"source {key}: reading the repository archive failed ({exc}); "
                f"retry {number} in {wait:.1f} s",
                source=key,
                event="archive_retry",
                retry=number,
                wait_s=round(wait, 1),
            )
            self.phase.note("archive retry", error=str(exc))

        read = call_with_retries(
            lambda: read_archive(self.snapshot, [*entries, *extras], self.settings.archive),
            policy=self.settings.archive_retries,
            # a rate limit is waited out by the caller, once, for the whole scan
            is_transient=lambda exc: (
                isinstance(exc, ApiError) and exc.transient and not isinstance(exc, RateLimited)
            ),
            on_retry=on_retry,
            sleep=self.sleep,
        )
        self.phase.set(
            archive_members=read.members,
            archive_kept=read.kept,
            archive_unusable=len(read.unusable),
        )
        logger.debug(
            "source %s: %d files to read; kept %d of %d archive members (%d bytes received)",
            key,
            len(entries),
            read.kept,
            read.members,
            read.archive_bytes,
        )


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
    rows never lose another's work. A scan or head check that a newer scan overtook (the source's
    scan version moved since the plan read it) is not written and ends `Superseded`.
    """
    started = time.monotonic()
    timeline = Timeline(outcome.cost)
    rows = 0
    with timeline.phase("write") as phase:
        try:
            rows = _store(catalog, outcome)
        except (ScanSupersededError, StaleHeadError) as exc:
            assert isinstance(outcome, Scanned | Current), "only scans and head checks are checked"
            phase.note("superseded", reason=str(exc))
            _log(
                logging.WARNING,
                f"source {outcome.source_key}: this run's result (commit "
                f"{(outcome.commit_sha or '')[:12]}) was not written: {exc}. The partition ends "
                "superseded and does not fail",
                source=outcome.source_key,
                event="scan_superseded",
                commit_sha=outcome.commit_sha,
            )
            outcome = Superseded(
                source_key=outcome.source_key,
                reason=str(exc),
                target=outcome.target,
                previous_target=outcome.previous_target,
                fallback_reason=outcome.fallback_reason,
                cost=outcome.cost,
            )
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
                base_version=outcome.base_version,
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
            problems=outcome.problems,
            expected_version=outcome.base_version,
        ).rows_affected
    if isinstance(outcome, Current):
        catalog.record_current(
            outcome.source_key,
            outcome.commit_sha,
            outcome.cost.api_calls,
            expected_version=outcome.base_version,
        )
        return 0
    # not a configured source (a partition added in the UI, a removed source): it has no active
    # row to note the failure on; its partition and the run log say why it failed
    recorded = True
    with contextlib.suppress(UnknownSourceError):
        recorded = catalog.record_failure(
            outcome.source_key,
            outcome.reason,
            api_calls=outcome.cost.api_calls,
            expected_version=outcome.base_version,
        )
    if not recorded:
        _log(
            logging.INFO,
            f"source {outcome.source_key}: its failure is not recorded in the catalog, where "
            "a newer scan was written since this run began; that scan's status stays",
            source=outcome.source_key,
            event="failure_superseded",
        )
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
