"""Writes of one source's scan results: its entries, a failure, or that its head is still current.

Each locks the source's row first (PostgreSQL `SELECT ... FOR UPDATE`; SQLite holds the database
already): two writes on one source queue, writes on different sources run side by side. A writer
that read the source at an older `scan_version` is refused (`ScanSupersededError`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from skillmeat_pipeline.lib.catalog.engine import CatalogEngine, utc_now
from skillmeat_pipeline.lib.catalog.errors import (
    ScanSupersededError,
    SourceRemovedError,
    StaleHeadError,
    UnknownSourceError,
)
from skillmeat_pipeline.lib.catalog.query import search_document
from skillmeat_pipeline.lib.catalog.records import WriteResult
from skillmeat_pipeline.lib.catalog.tables import (
    MAX_ERROR_CHARS,
    catalog_entries,
    sources,
    storable,
)
from skillmeat_pipeline.lib.core.models import (
    ArtifactKey,
    ArtifactStatus,
    ArtifactType,
    CatalogEntry,
    SourceStatus,
)
from skillmeat_pipeline.lib.core.strategy import CloneTarget


class ScanWrites(CatalogEngine):
    """`Catalog`'s scan writes: `write_scan`, `record_failure`, `record_current`."""

    def write_scan(
        self,
        source_key: str,
        entries: Sequence[CatalogEntry],
        *,
        clone_target: CloneTarget,
        api_calls: int,
        marketplace: dict[str, Any] | None,
        indexed_at: datetime,
        problems: Sequence[str] = (),
        expected_version: int | None = None,
    ) -> WriteResult:
        """Store one scan of a source in one transaction, with statuses against what is stored.

        Statuses: `new` when the path is not stored or stored as removed (it was absent from the
        previous scan), `updated` when its content_sha changed, `unchanged` otherwise; stored paths
        missing from this scan become `removed` (rows kept). `first_seen_commit` is set once and
        kept, also when a removed path comes back. The caller's status, first_seen_commit,
        indexed_commit and indexed_at on the entries are replaced. On any error nothing changes.

        `expected_version`: the source's `scan_version` when the scan began (`SourceRecord`); if
        another write changed it since, `ScanSupersededError` is raised and nothing is written.
        `problems`: what the scan found wrong with the tree outside any artifact.
        """
        commit_sha, tree_sha = _check_scan(source_key, entries, clone_target)
        scanned = {entry.key: entry for entry in entries}
        counts: Counter[ArtifactStatus] = Counter()
        with self._writer.begin() as conn:
            source_row = _lock_active_source(conn, source_key)
            _check_version(source_key, source_row, expected_version)
            stored = {
                (ArtifactType(row.artifact_type), row.path): row
                for row in conn.execute(
                    sa.select(
                        catalog_entries.c.artifact_type,
                        catalog_entries.c.path,
                        catalog_entries.c.status,
                        catalog_entries.c.content_sha,
                        catalog_entries.c.first_seen_commit,
                    ).where(catalog_entries.c.source_key == source_key)
                )
            }
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for key, entry in scanned.items():
                previous = stored.get(key)
                status = _scan_status(previous, entry)
                counts[status] += 1
                row = storable(
                    entry.model_dump(
                        mode="json",
                        exclude={"status", "first_seen_commit", "indexed_commit", "indexed_at"},
                    )
                )
                first_seen = previous.first_seen_commit if previous is not None else None
                row |= {
                    "search_document": search_document(
                        artifact_type=entry.artifact_type,
                        path=row["path"],
                        name=row["name"],
                        title=row["title"],
                        description=row["description"],
                        tags=row["tags"],
                        deep_search_text=row["deep_search_text"],
                    ),
                    "status": status,
                    "first_seen_commit": first_seen or commit_sha,
                    "indexed_commit": commit_sha,
                    "indexed_at": indexed_at,
                }
                if previous is None:
                    inserts.append(row | {"first_seen_at": indexed_at})
                else:
                    updates.append(_match(source_key, key) | row)
            removed = [
                _match(source_key, key)
                for key, row in stored.items()
                if key not in scanned and row.status != ArtifactStatus.REMOVED
            ]
            counts[ArtifactStatus.REMOVED] = len(removed)
            if inserts:
                conn.execute(sa.insert(catalog_entries), inserts)
            if updates:
                conn.execute(_update_entry_by_key(), updates)
            if removed:
                conn.execute(_update_entry_by_key().values(status=ArtifactStatus.REMOVED), removed)
            conn.execute(
                sa.update(sources)
                .where(sources.c.key == source_key)
                .values(
                    clone_target=clone_target.model_dump(mode="json"),
                    artifacts_root=clone_target.artifacts_root,
                    artifact_count=clone_target.artifact_count,
                    indexing_strategy=clone_target.strategy,
                    last_indexed_commit_sha=commit_sha,
                    last_indexed_tree_sha=tree_sha,
                    last_indexed_at=indexed_at,
                    last_status=SourceStatus.SCANNED,
                    last_error=None,
                    api_calls=api_calls,
                    marketplace=storable(marketplace),
                    problems=storable(list(problems)),
                    scan_version=sources.c.scan_version + 1,
                )
            )
        return WriteResult(
            rows_affected=len(inserts) + len(updates) + len(removed),
            new=counts[ArtifactStatus.NEW],
            updated=counts[ArtifactStatus.UPDATED],
            unchanged=counts[ArtifactStatus.UNCHANGED],
            removed=counts[ArtifactStatus.REMOVED],
        )

    def record_failure(
        self,
        source_key: str,
        error: str,
        *,
        api_calls: int | None = None,
        expected_version: int | None = None,
    ) -> bool:
        """Record a failed run; the entries of the last good scan stay as they are.

        False (nothing recorded) when `expected_version` is given and a newer scan was written
        since: its status stays, a late failure of an older run does not replace it.
        """
        if len(error) > MAX_ERROR_CHARS:
            error = error[:MAX_ERROR_CHARS] + f"... [{len(error) - MAX_ERROR_CHARS} chars cut]"
        values: dict[str, Any] = {"last_status": SourceStatus.FAILED, "last_error": error}
        if api_calls is not None:
            values["api_calls"] = api_calls
        with self._writer.begin() as conn:
            row = _lock_active_source(conn, source_key)
            if expected_version is not None and row.scan_version != expected_version:
                return False
            conn.execute(
                sa.update(sources).where(sources.c.key == source_key).values(storable(values))
            )
        return True

    def record_current(
        self,
        source_key: str,
        commit_sha: str,
        api_calls: int,
        *,
        checked_at: datetime | None = None,
        expected_version: int | None = None,
    ) -> None:
        """Record that the head is still the indexed commit: status `current`, no entry written.

        `last_indexed_at` moves to `checked_at` (now): the index is known fresh as of then.
        `expected_version`: as in `write_scan`.
        """
        with self._writer.begin() as conn:
            row = _lock_active_source(conn, source_key)
            _check_version(source_key, row, expected_version)
            if row.last_indexed_commit_sha != commit_sha:
                raise StaleHeadError(
                    f"source {source_key!r}: head {commit_sha} is not the indexed commit "
                    f"{row.last_indexed_commit_sha}; index it instead of recording it current"
                )
            conn.execute(
                sa.update(sources)
                .where(sources.c.key == source_key)
                .values(
                    last_status=SourceStatus.CURRENT,
                    last_error=None,
                    last_indexed_at=checked_at or utc_now(),
                    api_calls=api_calls,
                )
            )


def _lock_active_source(conn: Connection, source_key: str) -> Row[*tuple[Any, ...]]:
    """The source row, locked until commit (FOR UPDATE; SQLite holds the database already)."""
    row = conn.execute(
        sa.select(
            sources.c.key,
            sources.c.removed_at,
            sources.c.last_indexed_commit_sha,
            sources.c.scan_version,
        )
        .where(sources.c.key == source_key)
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise UnknownSourceError(
            f"source {source_key!r} is not in the catalog; upsert_sources() registers it"
        )
    if row.removed_at is not None:
        raise SourceRemovedError(
            f"source {source_key!r} was removed from the sources file at "
            f"{row.removed_at.isoformat()}; it is written again once it is listed again"
        )
    return row


def _check_scan(
    source_key: str, entries: Sequence[CatalogEntry], clone_target: CloneTarget
) -> tuple[str, str]:
    """(commit, tree) of a scan that can be written; ValueError naming what is wrong."""
    foreign = sorted({e.source_key for e in entries} - {source_key})
    if foreign:
        raise ValueError(f"scan of {source_key!r} holds entries of {', '.join(foreign)}")
    keys = Counter(e.key for e in entries)
    duplicates = sorted(f"{p} ({t.value})" for (t, p), n in keys.items() if n > 1)
    if duplicates:
        raise ValueError(f"scan of {source_key!r} lists paths twice: {', '.join(duplicates)}")
    # The clone target is the one record of what was read: it names the commit and tree.
    if not clone_target.commit_sha or not clone_target.tree_sha:
        raise ValueError(f"scan of {source_key!r}: the clone target names no commit or tree")
    return clone_target.commit_sha, clone_target.tree_sha


def _check_version(
    source_key: str, row: Row[*tuple[Any, ...]], expected_version: int | None
) -> None:
    if expected_version is not None and row.scan_version != expected_version:
        raise ScanSupersededError(source_key, expected_version, row)


def _scan_status(previous: Row[*tuple[Any, ...]] | None, entry: CatalogEntry) -> ArtifactStatus:
    if previous is None or previous.status == ArtifactStatus.REMOVED:
        return ArtifactStatus.NEW
    if previous.content_sha != entry.content_sha:
        return ArtifactStatus.UPDATED
    return ArtifactStatus.UNCHANGED


def _match(source_key: str, key: ArtifactKey) -> dict[str, Any]:
    return {"match_source_key": source_key, "match_type": key[0], "match_path": key[1]}


def _update_entry_by_key() -> sa.Update:
    return sa.update(catalog_entries).where(
        catalog_entries.c.source_key == sa.bindparam("match_source_key"),
        catalog_entries.c.artifact_type == sa.bindparam("match_type"),
        catalog_entries.c.path == sa.bindparam("match_path"),
    )
