"""Detection, extraction and trust findings of one tree: what every fetch path and `detect` run.

New and updated entries also get the `format.*` findings of their manifest and their quality
(`lib/quality`). Paths that cannot be indexed are left out first
(`core.untrusted.screen_snapshot`); each is a problem of the skill or plugin folder that holds it,
or of the source, and the rest is indexed.
Whatever the tree came from (a clone, the GitHub API, an archive), its blobs are read through
`read_blob` of its `TreeSnapshot`, once per scan: a `BlobCache` serves detection, extraction (deep
indexing) and the trust rules. An entry that extraction reused from the previous index (same
`content_sha`) keeps its stored findings without anything being read for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.files import BlobCache, artifact_file_paths
from skillmeat_pipeline.lib.core.findings import RiskCounts
from skillmeat_pipeline.lib.core.models import (
    ArtifactKey,
    ArtifactStatus,
    CatalogEntry,
    Detection,
    TreeSnapshot,
)
from skillmeat_pipeline.lib.core.untrusted import (
    ScreenedSnapshot,
    record_path_problems,
    screen_snapshot,
)
from skillmeat_pipeline.lib.quality.rubric import score_entries
from skillmeat_pipeline.lib.quality.validation import format_findings
from skillmeat_pipeline.lib.trust.files import findings_of, read_text_files
from skillmeat_pipeline.lib.trust.scan import findings_for_files

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FindingsScan:
    """What computing the findings of one tree took."""

    scanned: int  # entries whose findings were computed
    kept: int  # entries that kept their stored findings
    files: int  # text files the rules read
    bytes: int  # and their size
    findings_ms: int


@dataclass(frozen=True, slots=True)
class IndexedTree:
    """A tree's catalog entries, with findings, and what detection found around them."""

    detection: Detection
    entries: list[CatalogEntry]
    screened: ScreenedSnapshot  # the tree without the paths that cannot be indexed
    problems: list[str]  # the source's own: skipped paths no folder holds, detection's
    extract_ms: int  # detection + extraction
    findings: FindingsScan
    blob_reads: int  # blobs read from the snapshot, each at most once while the cache holds it
    cache_hits: int


def index_tree(
    snapshot: TreeSnapshot,
    *,
    source_key: str,
    repo_name: str | None = None,
    root_hint: str | None = None,
    exclude: Sequence[str] = (),
    upstream_url: str | None = None,
    deep_indexing: bool = False,
    previous: Mapping[ArtifactKey, CatalogEntry] | None = None,
    plugin_entry: dict[str, Any] | None = None,
    read_ahead: Callable[[Detection], None] | None = None,
) -> IndexedTree:
    """Detect the artifacts of `snapshot`, extract their entries and attach their findings.

    `plugin_entry` is the marketplace entry of a plugin source (its root is that plugin);
    `read_ahead` is given the detection before extraction reads anything (the API path fetches
    what will be read in one go).
    """
    screened = screen_snapshot(snapshot)
    cache = BlobCache(screened)
    started = time.monotonic()
    detection = detect_artifacts(
        cache,
        root_hint=root_hint,
        exclude=exclude,
        repo_name=repo_name,
        plugin_entry=plugin_entry,
    )
    if read_ahead is not None:
        read_ahead(detection)
    problems = record_path_problems(screened, detection) + detection.problems
    entries = extract_catalog_entries(
        cache,
        detection,
        source_key=source_key,
        upstream_url=upstream_url,
        deep_indexing=deep_indexing,
        previous=previous,
    )
    extract_ms = _ms_since(started)
    entries, scan = attach_findings(cache, entries)
    entries = score_entries(attach_format_findings(cache, entries))
    _log_findings(source_key, entries, scan)
    return IndexedTree(
        detection, entries, screened, problems, extract_ms, scan, cache.reads, cache.hits
    )


def attach_findings(
    snapshot: TreeSnapshot, entries: Sequence[CatalogEntry]
) -> tuple[list[CatalogEntry], FindingsScan]:
    """`entries` with their findings: computed for those that have none yet, kept otherwise.

    The files of every entry without findings are read once and scanned together. An entry that
    kept stored findings but whose files were all read anyway (a hook file inside a changed
    plugin) gets them afresh at no cost: a hook's findings look at the scripts it runs.
    """
    started = time.monotonic()
    stale = [entry for entry in entries if entry.findings is None]
    if not stale:  # a re-index with nothing changed: nothing to list or read
        return list(entries), FindingsScan(0, len(entries), 0, 0, _ms_since(started))
    blob_paths = sorted(e.path for e in snapshot.entries if e.is_blob)
    paths = {entry.key: artifact_file_paths(entry, blob_paths) for entry in stale}
    wanted = {path for listed in paths.values() for path in listed}
    text = read_text_files(snapshot, wanted)
    found = findings_for_files(text.files) if text.files else []
    result: list[CatalogEntry] = []
    kept = 0
    for entry in entries:
        if entry.key not in paths:
            listed = artifact_file_paths(entry, blob_paths)
            if not wanted.issuperset(listed):
                kept += 1
                result.append(entry)
                continue
            paths[entry.key] = listed
        updated = entry.with_findings(findings_of(entry, found, text.files))
        unreadable = [p for p in paths[entry.key] if p in text.unreadable]
        if unreadable:
            updated.problems = [
                *updated.problems,
                *(f"{p}: not read for the trust rules ({text.unreadable[p]})" for p in unreadable),
            ]
        result.append(updated)
    scan = FindingsScan(
        scanned=len(result) - kept,
        kept=kept,
        files=len(text.files),
        bytes=sum(len(data) for data in text.files.values()),
        findings_ms=_ms_since(started),
    )
    return result, scan


def attach_format_findings(
    snapshot: TreeSnapshot, entries: Sequence[CatalogEntry]
) -> list[CatalogEntry]:
    """New and updated entries with the `format.*` findings of their manifest (its bytes are in
    the scan's cache already); unchanged entries keep what was stored."""
    blobs = {e.path: e for e in snapshot.entries if e.is_blob}
    result: list[CatalogEntry] = []
    for entry in entries:
        blob = blobs.get(entry.manifest_path or "")
        if entry.status is ArtifactStatus.UNCHANGED or blob is None:
            result.append(entry)
            continue
        try:
            data = snapshot.read_blob(blob)
        except (LookupError, ValueError, OSError):
            result.append(entry)  # extraction already recorded why it could not be read
            continue
        folder = str(entry.metadata.get("real_path") or entry.path)
        found = format_findings(entry.artifact_type, entry.manifest_path, data, folder=folder)
        result.append(entry.with_findings([*(entry.findings or []), *found]) if found else entry)
    return result


def _log_findings(source_key: str, entries: Sequence[CatalogEntry], scan: FindingsScan) -> None:
    """One structured record of a source's findings: counts only, never an excerpt."""
    counts = RiskCounts.of(entry.risk for entry in entries)
    logger.info(
        f"source {source_key}: trust rules read {scan.files} files of {scan.scanned} artifacts "
        f"({scan.kept} kept their findings) in {scan.findings_ms} ms; artifacts at risk: "
        f"{counts.high} high, {counts.medium} medium, {counts.low} low",
        extra={
            "record": {
                "source": source_key,
                "event": "findings",
                "artifacts_scanned": scan.scanned,
                "artifacts_kept": scan.kept,
                "files_read": scan.files,
                "findings_ms": scan.findings_ms,
                "high_risk_count": counts.high,
                "medium_risk_count": counts.medium,
                "low_risk_count": counts.low,
            }
        },
    )


def _ms_since(start: float) -> int:
    return round((time.monotonic() - start) * 1000)
