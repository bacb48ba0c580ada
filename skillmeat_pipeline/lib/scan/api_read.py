"""Step 4, reading a source over the GitHub API (`read_over_api`): the tree over REST, its files
read ahead (`_ReadAhead`) from the repository archive or by raw reads, a short rate limit waited
out once. `ListingOnly` also sizes a first index from one tree call (`route`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.files import BINARY_SUFFIXES, artifact_file_paths
from skillmeat_pipeline.lib.core.models import (
    ArtifactKey,
    CatalogEntry,
    Detection,
    TreeEntry,
    TreeSnapshot,
)
from skillmeat_pipeline.lib.core.retry import call_with_retries
from skillmeat_pipeline.lib.core.strategy import Strategy
from skillmeat_pipeline.lib.core.tree_view import DEFAULT_IGNORED_SEGMENTS
from skillmeat_pipeline.lib.core.untrusted import TreeTooLargeError, screen_snapshot
from skillmeat_pipeline.lib.fetch.github.archive import read_archive
from skillmeat_pipeline.lib.fetch.github.errors import ApiError, RateLimited
from skillmeat_pipeline.lib.fetch.github.http import ScanStats
from skillmeat_pipeline.lib.fetch.github.snapshot import ApiTreeSnapshot
from skillmeat_pipeline.lib.scan.cost import OpenPhase, Timeline
from skillmeat_pipeline.lib.scan.events import FAILURE_NEXT, log_event
from skillmeat_pipeline.lib.scan.outcomes import Failed, FellBack, Scanned, SourcePlan, failed
from skillmeat_pipeline.lib.scan.settings import Fetchers
from skillmeat_pipeline.lib.scan.tree_scan import (
    detect_as_configured,
    failed_too_large,
    index_fetched_tree,
    pinned_commit,
)
from skillmeat_pipeline.lib.trust.scan import MAX_FILE_BYTES

logger = logging.getLogger(__name__)


class ListingOnly:
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


def spend_api(timeline: Timeline, stats: ScanStats) -> None:
    """What one scan's GitHub client spent, added to `timeline`'s cost."""
    timeline.spend(
        api_calls=stats.api_calls,
        raw_reads=stats.raw_reads,
        archive_bytes=stats.archive_bytes,
        bytes_fetched=stats.bytes_fetched,
        responses=stats.responses,
    )


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
        log_event(
            logger,
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
        return failed_too_large(replace(plan, cost=timeline.cost()), exc)
    except ApiError as exc:
        pin = pinned_commit(source)
        reason = f"pinned commit {pin} could not be read: {exc}" if pin else str(exc)
        log_event(
            logger,
            logging.ERROR,
            f"source {plan.key}: the GitHub API path failed: {reason}; {FAILURE_NEXT}",
            source=plan.key,
            event="api_failed",
        )
        return failed(replace(plan, cost=timeline.cost()), reason)
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
            reader = _ReadAhead(plan, fetchers, snapshot, previous, phase, sleep)
            reader.before_detection()
            return index_fetched_tree(
                plan, timeline, Strategy.API, snapshot, previous, reader.before_extraction
            )
        except RateLimited as exc:
            if attempt or exc.retry_after_s > fetchers.settings.max_rate_limit_wait_s:
                raise
            log_event(
                logger,
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
            spend_api(timeline, stats)
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
        listing = ListingOnly(self.screened)
        self._read(self._planned(listing, detect_as_configured(listing, self.plan.source)))

    def before_extraction(self, detection: Detection) -> None:
        self._read(self._planned(ListingOnly(self.screened), detection))

    def _planned(self, listing: ListingOnly, detection: Detection) -> list[TreeEntry]:
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
            log_event(
                logger,
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
