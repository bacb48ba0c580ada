"""Duplicate clusters across the catalog (SPEC §5.5): live artifacts of one kind whose content is
identical (`content_sha`; a copied skill folder keeps its git tree SHA) are one cluster.

The canonical copy is the earliest seen (`first_seen_at`), ties broken by key `(source_key,
artifact_type, path)`. Every live row gets `copies` (the size of its cluster, 1 when alone) and
`duplicate_of` (the canonical copy's key, null on the canonical copy and on singletons); a removed
row gets neither. Only rows whose values change are written.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.catalog.tables import catalog_entries, sources
from skillmeat_pipeline.lib.core.models import ArtifactStatus

_NEVER = datetime.max.replace(tzinfo=UTC)  # a row without first_seen_at sorts last
_WRITE_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class DuplicateRow:
    """What clustering reads of one catalog row."""

    id: int
    source_key: str
    artifact_type: str
    path: str
    content_sha: str
    first_seen_at: datetime | None
    live: bool = True

    @property
    def reference(self) -> dict[str, str]:
        """How `duplicate_of` names this row: its catalog key."""
        return {
            "source_key": self.source_key,
            "artifact_type": self.artifact_type,
            "path": self.path,
        }


@dataclass(frozen=True, slots=True)
class Assignment:
    """`duplicate_of` and `copies` of one row."""

    duplicate_of: dict[str, str] | None
    copies: int | None


REMOVED = Assignment(duplicate_of=None, copies=None)


@dataclass(frozen=True, slots=True)
class DuplicateStats:
    """One refresh: live rows, clusters of two or more, rows that are copies, rows written."""

    live_rows: int
    clusters: int
    duplicate_rows: int  # rows with a `duplicate_of` (every copy but the canonical one)
    largest_cluster: int
    rows_written: int

    @property
    def duplicate_share(self) -> float:
        return self.duplicate_rows / self.live_rows if self.live_rows else 0.0


def _canonical_order(row: DuplicateRow) -> tuple[datetime, str, str, str]:
    return (row.first_seen_at or _NEVER, row.source_key, row.artifact_type, row.path)


def assign_clusters(rows: Iterable[DuplicateRow]) -> dict[int, Assignment]:
    """Every row's assignment by id: clusters by (kind, content), canonical the earliest seen."""
    groups: dict[tuple[str, str], list[DuplicateRow]] = defaultdict(list)
    result: dict[int, Assignment] = {}
    for row in rows:
        if row.live:
            groups[(row.artifact_type, row.content_sha)].append(row)
        else:
            result[row.id] = REMOVED
    for members in groups.values():
        if len(members) == 1:
            result[members[0].id] = Assignment(duplicate_of=None, copies=1)
            continue
        canonical = min(members, key=_canonical_order)
        for member in members:
            pointer = None if member is canonical else canonical.reference
            result[member.id] = Assignment(duplicate_of=pointer, copies=len(members))
    return result


def summarize(assignments: Mapping[int, Assignment]) -> tuple[int, int, int, int]:
    """(live rows, clusters of two or more, duplicate rows, largest cluster)."""
    live = [a for a in assignments.values() if a.copies is not None]
    canonical_of_cluster = [a for a in live if a.duplicate_of is None and (a.copies or 0) > 1]
    duplicates = sum(1 for a in live if a.duplicate_of is not None)
    largest = max((a.copies or 0 for a in live), default=0)
    return len(live), len(canonical_of_cluster), duplicates, largest


def refresh_duplicates(catalog: Catalog) -> DuplicateStats:
    """Compute the clusters over the whole catalog and store `duplicate_of` and `copies`.

    Reads outside any write transaction; each update is guarded by the row's `content_sha` and
    status as read, so a row that a scan changed meanwhile keeps its values until the next refresh
    (which the scan's own run triggers).
    """
    live_source = sa.and_(
        catalog_entries.c.status != ArtifactStatus.REMOVED, sources.c.removed_at.is_(None)
    )
    query = sa.select(
        *catalog_entries.c["id", "source_key", "artifact_type", "path", "content_sha"],
        *catalog_entries.c["first_seen_at", "duplicate_of", "copies", "status"],
        live_source.label("live"),
    ).select_from(catalog_entries.join(sources, sources.c.key == catalog_entries.c.source_key))
    rows: list[DuplicateRow] = []
    stored: dict[int, tuple[Any, Any, str, str]] = {}
    with catalog.engine.connect() as conn:
        for row in conn.execute(query.execution_options(yield_per=5000)):
            rows.append(
                DuplicateRow(
                    id=row.id,
                    source_key=row.source_key,
                    artifact_type=row.artifact_type,
                    path=row.path,
                    content_sha=row.content_sha,
                    first_seen_at=row.first_seen_at,
                    live=bool(row.live),
                )
            )
            stored[row.id] = (row.duplicate_of, row.copies, row.content_sha, row.status)
    assignments = assign_clusters(rows)
    changes = [
        Change(row_id, stored[row_id][2], stored[row_id][3], assignment)
        for row_id, assignment in assignments.items()
        if (stored[row_id][0], stored[row_id][1]) != (assignment.duplicate_of, assignment.copies)
    ]
    write = _update_each if catalog.dialect == "sqlite" else _update_from_arrays
    for start in range(0, len(changes), _WRITE_CHUNK):
        # short transactions: index runs writing at the same time wait at most one chunk
        with catalog.begin_write() as conn:
            write(conn, changes[start : start + _WRITE_CHUNK])
    live, clusters, duplicates, largest = summarize(assignments)
    return DuplicateStats(
        live_rows=live,
        clusters=clusters,
        duplicate_rows=duplicates,
        largest_cluster=largest,
        rows_written=len(changes),
    )


@dataclass(frozen=True, slots=True)
class Change:
    """A new assignment for one row, written only while the row's content and status are as read."""

    id: int
    content_sha: str
    status: str
    assignment: Assignment


def _update_each(conn: Connection, changes: Sequence[Change]) -> None:
    """SQLite: one UPDATE a row (executemany), cheap in-process."""
    update = (
        sa.update(catalog_entries)
        .where(
            catalog_entries.c.id == sa.bindparam("match_id"),
            catalog_entries.c.content_sha == sa.bindparam("match_sha"),
            catalog_entries.c.status == sa.bindparam("match_status"),
        )
        .values(
            duplicate_of=sa.bindparam(
                "new_duplicate_of", type_=catalog_entries.c.duplicate_of.type
            ),
            copies=sa.bindparam("new_copies", type_=sa.Integer()),
        )
    )
    conn.execute(
        update,
        [
            {
                "match_id": change.id,
                "match_sha": change.content_sha,
                "match_status": change.status,
                "new_duplicate_of": change.assignment.duplicate_of,
                "new_copies": change.assignment.copies,
            }
            for change in changes
        ],
    )


def _update_from_arrays(conn: Connection, changes: Sequence[Change]) -> None:
    """PostgreSQL: one `UPDATE ... FROM unnest(arrays)` for all `changes`. An executemany is one
    round trip a row (100,000 rows: 27.5 s, against 5.6 s this way); five array parameters keep the
    statement the same for every chunk, so SQLAlchemy compiles it once (a VALUES list would not)."""
    conn.execute(
        _UPDATE_FROM_ARRAYS,
        {
            "ids": [c.id for c in changes],
            "shas": [c.content_sha for c in changes],
            "statuses": [c.status for c in changes],
            "duplicates_of": [
                None if c.assignment.duplicate_of is None else json.dumps(c.assignment.duplicate_of)
                for c in changes
            ],
            "copies": [c.assignment.copies for c in changes],
        },
    )


def _array(name: str, item: sa.types.TypeEngine[Any]) -> sa.Cast[Any]:
    # typed: psycopg2 sends a list as ARRAY[...], which is text[] when every item is NULL
    return sa.cast(sa.bindparam(name), postgresql.ARRAY(item))


_NEW = (
    sa.func.unnest(
        _array("ids", sa.BigInteger()),
        _array("shas", sa.Text()),
        _array("statuses", sa.Text()),
        _array("duplicates_of", sa.Text()),  # JSON text, NULL for none
        _array("copies", sa.Integer()),
    )
    .table_valued(
        sa.column("id", sa.BigInteger()),
        sa.column("content_sha", sa.Text()),
        sa.column("status", sa.Text()),
        sa.column("duplicate_of", sa.Text()),
        sa.column("copies", sa.Integer()),
    )
    .render_derived(name="new", with_types=False)
)
_UPDATE_FROM_ARRAYS = (
    sa.update(catalog_entries)
    .where(
        catalog_entries.c.id == _NEW.c.id,
        catalog_entries.c.content_sha == _NEW.c.content_sha,
        catalog_entries.c.status == _NEW.c.status,
    )
    .values(duplicate_of=sa.cast(_NEW.c.duplicate_of, postgresql.JSONB()), copies=_NEW.c.copies)
)
