"""Writes that follow the sources file and the marketplaces: which sources exist, which are gone.

Each holds the sources-sync lock (PostgreSQL: an advisory lock; SQLite: the one writer), so two
syncs never interleave.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from skillmeat_pipeline.lib.catalog.engine import CatalogEngine, key_slices, utc_now
from skillmeat_pipeline.lib.catalog.records import SourceOrigin
from skillmeat_pipeline.lib.catalog.tables import (
    MAX_ERROR_CHARS,
    catalog_entries,
    sources,
    storable,
)
from skillmeat_pipeline.lib.core.models import ArtifactStatus, SourceStatus
from skillmeat_pipeline.lib.core.plugin_sources import PluginSourceConfig, SkippedEntry
from skillmeat_pipeline.lib.core.sources import SourceConfig

_SOURCES_SYNC_LOCK_ID = 0x534B4D02  # PostgreSQL transaction-level advisory lock
_CONFIG_FIELDS = ("url", "github", "ref", "root_hint", "exclude", "deep_indexing")
_ORIGIN_FIELDS = ("origin", "marketplace_key", "plugin", "pinned_commit")


def _stored_fields(config: SourceConfig) -> dict[str, Any]:
    """The columns a source's configuration sets: a change re-indexes it."""
    fields = config.model_dump(include=set(_CONFIG_FIELDS))
    if isinstance(config, PluginSourceConfig):
        return fields | {
            "origin": SourceOrigin.MARKETPLACE,
            "marketplace_key": config.marketplace_key,
            "plugin": config.plugin,
            "pinned_commit": config.pinned_commit,
        }
    origin = {"origin": SourceOrigin.FILE, "marketplace_key": None, "plugin": None}
    return fields | origin | {"pinned_commit": None}


class SourceListWrites(CatalogEngine):
    """`Catalog`'s source-list writes: upsert listed sources, store skipped ones, mark removed."""

    def upsert_sources(self, configs: Sequence[SourceConfig]) -> None:
        """Insert new sources, update changed ones, bring back removed ones that are listed again.

        A changed configuration or a re-added source clears `last_indexed_commit_sha`, so its next
        run indexes the tree again rather than recording an unchanged head as current.
        """
        keys = [c.key for c in configs]
        if len(set(keys)) != len(keys):
            duplicates = sorted(k for k, n in Counter(keys).items() if n > 1)
            raise ValueError(f"duplicate source keys: {', '.join(duplicates)}")
        with self._writer.begin() as conn:
            self._advisory_lock(conn, _SOURCES_SYNC_LOCK_ID)
            stored = {
                row.key: row
                for row in conn.execute(
                    sa.select(
                        sources.c.key,
                        sources.c.removed_at,
                        sources.c.last_status,
                        *sources.c[_CONFIG_FIELDS + _ORIGIN_FIELDS],
                    )
                )
            }
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for config in configs:
                fields = _stored_fields(config)
                row = stored.get(config.key)
                if row is None:
                    inserts.append({"key": config.key, **fields})
                    continue
                skipped = row.last_status == SourceStatus.SKIPPED
                changed = any(getattr(row, name) != value for name, value in fields.items())
                if not changed and row.removed_at is None and not skipped:
                    continue
                update = {"match_key": config.key, **fields, "last_indexed_commit_sha": None}
                if row.removed_at is not None or skipped:
                    update |= {"removed_at": None, "last_status": None, "last_error": None}
                updates.append(update)
            if inserts:
                conn.execute(sa.insert(sources), inserts)
            # Grouped by the columns they set: an executemany needs one shape.
            for shape in {frozenset(u) for u in updates}:
                conn.execute(
                    sa.update(sources)
                    .where(sources.c.key == sa.bindparam("match_key"))
                    # a run that read the old configuration must not store its scan
                    .values(scan_version=sources.c.scan_version + 1),
                    [u for u in updates if frozenset(u) == shape],
                )

    def upsert_skipped_sources(self, skipped: Sequence[SkippedEntry]) -> None:
        """Store listed-but-not-fetched marketplace entries as `skipped` source rows, with why.

        They have no partition; their rows say what the marketplace lists that is not indexed.
        """
        if not skipped:
            return
        rows = {
            entry.key: storable(
                {
                    "url": entry.location,
                    "github": None,
                    "ref": None,
                    "root_hint": None,
                    "exclude": [],
                    "deep_indexing": False,
                    "origin": SourceOrigin.MARKETPLACE,
                    "marketplace_key": entry.marketplace_key,
                    "plugin": entry.plugin,
                    "pinned_commit": None,
                    "last_status": SourceStatus.SKIPPED,
                    "last_error": entry.reason[:MAX_ERROR_CHARS],
                    "removed_at": None,
                }
            )
            for entry in skipped
        }
        with self._writer.begin() as conn:
            self._advisory_lock(conn, _SOURCES_SYNC_LOCK_ID)
            keys = sorted(rows)
            stored: set[str] = set()
            for keys_slice in key_slices(keys):
                stored.update(
                    conn.execute(
                        sa.select(sources.c.key).where(sources.c.key.in_(keys_slice))
                    ).scalars()
                )
            inserts = [{"key": key, **row} for key, row in rows.items() if key not in stored]
            updates = [{"match_key": key, **row} for key, row in rows.items() if key in stored]
            if inserts:
                conn.execute(sa.insert(sources), inserts)
            if updates:
                conn.execute(
                    sa.update(sources).where(sources.c.key == sa.bindparam("match_key")), updates
                )

    def mark_sources_removed(self, keys: Iterable[str]) -> int:
        """Mark sources gone from the sources file, and their entries, removed (nothing deleted).

        Returns how many sources were newly marked; unknown or already removed keys are skipped.
        """
        wanted = sorted(set(keys))
        if not wanted:
            return 0
        with self._writer.begin() as conn:
            self._advisory_lock(conn, _SOURCES_SYNC_LOCK_ID)
            removed = (
                conn.execute(
                    sa.update(sources)
                    .where(sources.c.key.in_(wanted), sources.c.removed_at.is_(None))
                    .values(removed_at=utc_now(), last_status=SourceStatus.REMOVED)
                    .returning(sources.c.key)
                )
                .scalars()
                .all()
            )
            if removed:
                conn.execute(
                    sa.update(catalog_entries)
                    .where(
                        catalog_entries.c.source_key.in_(removed),
                        catalog_entries.c.status != ArtifactStatus.REMOVED,
                    )
                    .values(status=ArtifactStatus.REMOVED)
                )
        return len(removed)
