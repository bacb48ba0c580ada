"""From a fetched tree to a scanned outcome, the same for a clone and for the GitHub API: detection
as the source configures it, extraction and findings (`index_fetched_tree`), the marketplace
entries' problems and the end of a tree too large to index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.models import ArtifactKey, CatalogEntry, Detection, TreeSnapshot
from skillmeat_pipeline.lib.core.plugin_sources import PluginSourceConfig, plugin_sources
from skillmeat_pipeline.lib.core.sources import SourceConfig, github_base_url
from skillmeat_pipeline.lib.core.strategy import Strategy, artifact_location, build_clone_target
from skillmeat_pipeline.lib.core.untrusted import TreeTooLargeError
from skillmeat_pipeline.lib.scan.artifacts import index_tree
from skillmeat_pipeline.lib.scan.cost import Timeline
from skillmeat_pipeline.lib.scan.events import FAILURE_NEXT, log_event
from skillmeat_pipeline.lib.scan.outcomes import Failed, Scanned, SourcePlan, failed

logger = logging.getLogger(__name__)


def pinned_commit(source: SourceConfig) -> str | None:
    """The commit a plugin source is pinned to (its entry's `sha`), or None: follow the ref."""
    return source.pinned_commit if isinstance(source, PluginSourceConfig) else None


def _plugin_entry(source: SourceConfig) -> dict[str, Any] | None:
    """The marketplace entry a plugin source's root is the plugin of (None: not a plugin source)."""
    if not isinstance(source, PluginSourceConfig):
        return None
    return source.entry or {"name": source.plugin}


def detect_as_configured(snapshot: TreeSnapshot, source: SourceConfig) -> Detection:
    """The artifacts of `snapshot` as `source` configures detection (root hint, excludes)."""
    return detect_artifacts(
        snapshot,
        root_hint=source.root_hint,
        exclude=source.exclude,
        repo_name=source.github or source.key,
        plugin_entry=_plugin_entry(source),
    )


def manifest_paths_of(detection: Detection) -> list[str]:
    """Where each detected artifact is declared: its manifest, else its location."""
    return [a.manifest_path or artifact_location(a.path) for a in detection.artifacts]


def index_fetched_tree(
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
            log_event(
                logger,
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
        manifest_paths_of(detection),
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
        log_event(
            logger,
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


def failed_too_large(plan: SourcePlan, exc: TreeTooLargeError) -> Failed:
    reason = f"source {plan.key}: {exc}"
    log_event(
        logger,
        logging.ERROR,
        f"{reason}; {FAILURE_NEXT}",
        source=plan.key,
        event="tree_too_large",
        limit=exc.limit,
    )
    return failed(plan, reason)
