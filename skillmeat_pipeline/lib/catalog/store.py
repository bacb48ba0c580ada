"""The catalog database (SPEC §5.2 to §5.4): sources, catalog entries and their search index.

SQLite (a file, FTS5) by default, PostgreSQL (tsvector + GIN) in production, both through
SQLAlchemy Core; the schema is created and changed by the alembic revisions in
`catalog_migrations`. Writes are short transactions that hold the source they change:

* SQLite has one writer at a time. Write transactions start with `BEGIN IMMEDIATE`, so a second
  writer waits on the busy timeout instead of failing when it upgrades a stale read snapshot; WAL
  lets readers (search, the UI) go on while a write is in progress.
* PostgreSQL locks the source's row (`SELECT ... FOR UPDATE`): two writes on one source queue,
  writes on different sources run side by side.

Slow work (clone, extraction) happens before `write_scan`, outside any transaction.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Dialect, Engine, Row
from typing_extensions import override  # typing.override from Python 3.12

from skillmeat_pipeline.lib.catalog.migrations import upgrade_to_head
from skillmeat_pipeline.lib.catalog.query import search_document
from skillmeat_pipeline.lib.core.findings import Finding, RiskCounts, Severity
from skillmeat_pipeline.lib.core.models import (
    ArtifactKey,
    ArtifactStatus,
    ArtifactType,
    CatalogEntry,
    SourceStatus,
)
from skillmeat_pipeline.lib.core.plugin_sources import PluginSourceConfig, SkippedEntry
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.core.strategy import CloneTarget, Strategy

INDEX_URL_ENV = "SKILLMEAT_INDEX_URL"
DEFAULT_INDEX_URL = "sqlite:///skillmeat_index.sqlite"  # relative to the working directory
SQLITE_BUSY_TIMEOUT_SECONDS = 60.0
MAX_ERROR_CHARS = 8000
# Transaction-level advisory locks (PostgreSQL) serialising schema changes and source-list syncs.
_MIGRATION_LOCK_ID = 0x534B4D01
_SOURCES_SYNC_LOCK_ID = 0x534B4D02
_WRITE_OPTION = "skillmeat_write"
_SURROGATE = re.compile("[\ud800-\udfff]")


class CatalogError(Exception):
    """A catalog operation that cannot be done as asked."""


class UnknownSourceError(CatalogError, LookupError):
    """The source has no row: `upsert_sources` it first."""


class SourceRemovedError(UnknownSourceError):
    """The source was removed from the sources file; it is not written until re-added."""


class StaleHeadError(CatalogError):
    """`record_current` was given a head that is not the indexed commit."""


class ScanSupersededError(CatalogError):
    """The source's scan version moved since the writer read it: a newer scan (or configuration)
    was written meanwhile, and this older result must not replace it."""

    def __init__(self, source_key: str, expected: int, row: Row[*tuple[Any, ...]]) -> None:
        commit = row.last_indexed_commit_sha
        super().__init__(
            f"source {source_key!r}: a newer scan was written since this run read the catalog "
            f"(scan version {row.scan_version}, was {expected}; indexed commit "
            f"{commit[:12] if commit else 'none'}); the newer rows stay"
        )
        self.source_key = source_key
        self.indexed_commit: str | None = commit


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite's DATETIME keeps no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    @override
    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: give a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    @override
    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Query-side view of the schema that `catalog_migrations` creates (a test compares the two); the
# full-text index (FTS5 table or tsvector column) is known to the migrations only.
_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
metadata = sa.MetaData()

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("github", sa.Text()),
    sa.Column("ref", sa.Text()),
    sa.Column("root_hint", sa.Text()),
    sa.Column("exclude", _JSON, nullable=False),
    sa.Column("deep_indexing", sa.Boolean(), nullable=False),
    sa.Column("clone_target", _JSON),
    sa.Column("artifacts_root", sa.Text()),
    sa.Column("artifact_count", sa.Integer()),
    sa.Column("indexing_strategy", sa.Text()),
    sa.Column("last_indexed_commit_sha", sa.Text()),
    sa.Column("last_indexed_tree_sha", sa.Text()),
    sa.Column("last_indexed_at", UTCDateTime()),
    sa.Column("last_status", sa.Text()),
    sa.Column("last_error", sa.Text()),
    sa.Column("api_calls", sa.Integer()),
    sa.Column("marketplace", _JSON),
    sa.Column("removed_at", UTCDateTime()),
    # grows with every scan written and every configuration change: the optimistic check that
    # keeps an older, slower run from replacing a newer scan (`ScanSupersededError`)
    sa.Column("scan_version", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("problems", _JSON),  # the last scan's problems with the tree, outside any artifact
    sa.Column("origin", sa.Text(), nullable=False, server_default="file"),
    sa.Column("marketplace_key", sa.Text()),
    sa.Column("plugin", sa.Text()),
    sa.Column("pinned_commit", sa.Text()),
    sa.Index("ix_sources_marketplace_key", "marketplace_key"),
)

catalog_entries = sa.Table(
    "catalog_entries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("source_key", sa.Text(), sa.ForeignKey("sources.key"), nullable=False),
    sa.Column("path", sa.Text(), nullable=False),
    sa.Column("artifact_type", sa.Text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("title", sa.Text()),
    sa.Column("description", sa.Text()),
    sa.Column("tags", _JSON, nullable=False),
    sa.Column("tools", _JSON, nullable=False),
    sa.Column("model", sa.Text()),
    sa.Column("plugin_path", sa.Text()),
    sa.Column("confidence", sa.Integer(), nullable=False),
    sa.Column("signals", _JSON, nullable=False),
    sa.Column("problems", _JSON, nullable=False),
    sa.Column("findings", _JSON),
    sa.Column("risk", sa.Text()),
    sa.Column("content_sha", sa.Text(), nullable=False),
    sa.Column("manifest_path", sa.Text()),
    sa.Column("upstream_url", sa.Text()),
    sa.Column("search_text", sa.Text(), nullable=False),
    sa.Column("deep_search_text", sa.Text()),
    # what both backends' full-text index holds (migration 0009): `query.search_document`
    sa.Column("search_document", sa.Text(), nullable=False, server_default=""),
    sa.Column("deep_index_files", _JSON, nullable=False),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("first_seen_commit", sa.Text()),
    sa.Column("indexed_commit", sa.Text()),
    sa.Column("indexed_at", UTCDateTime()),
    sa.Column("metadata", _JSON, nullable=False),
    # SPEC §5.5 (migration 0008): quality from lib/quality; clusters from lib/catalog/duplicates
    sa.Column("quality", sa.Integer()),
    sa.Column("quality_components", _JSON),
    sa.Column("duplicate_of", _JSON),
    sa.Column("copies", sa.Integer()),
    sa.Column("first_seen_at", UTCDateTime()),
    sa.UniqueConstraint(
        "source_key", "artifact_type", "path", name="uq_catalog_entries_source_key_type_path"
    ),
    sa.Index("ix_catalog_entries_content_sha", "content_sha"),
    sa.CheckConstraint("confidence BETWEEN 0 AND 100", name="ck_catalog_entries_confidence_range"),
    sa.CheckConstraint(
        "status IN ('new', 'updated', 'unchanged', 'removed')",
        name="ck_catalog_entries_status_known",
    ),
    sa.Index("ix_catalog_entries_source_key_risk", "source_key", "risk"),
)

push_events = sa.Table(
    "push_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("delivery_id", sa.Text(), nullable=False),
    sa.Column("repository", sa.Text(), nullable=False),
    sa.Column("ref", sa.Text()),
    sa.Column("after_sha", sa.Text()),
    sa.Column("source_keys", _JSON, nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("handled_at", UTCDateTime()),
    sa.UniqueConstraint("delivery_id", name="uq_push_events_delivery_id"),
    sa.Index("ix_push_events_handled_at", "handled_at"),
)

_ENTRY_COLUMNS = [catalog_entries.c[name] for name in CatalogEntry.model_fields]
_CONFIG_FIELDS = ("url", "github", "ref", "root_hint", "exclude", "deep_indexing")
_ORIGIN_FIELDS = ("origin", "marketplace_key", "plugin", "pinned_commit")


class SourceOrigin(StrEnum):
    FILE = "file"  # declared in the sources file
    MARKETPLACE = "marketplace"  # referenced by an entry of an indexed marketplace (SPEC §2.1)


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


class SourceRecord(BaseModel):
    """A source row as stored (SPEC §5.3), with its clone target parsed back."""

    key: str
    url: str
    github: str | None
    ref: str | None
    root_hint: str | None
    exclude: list[str]
    deep_indexing: bool
    clone_target: CloneTarget | None
    artifacts_root: str | None
    artifact_count: int | None
    indexing_strategy: Strategy | None
    last_indexed_commit_sha: str | None
    last_indexed_tree_sha: str | None
    last_indexed_at: datetime | None
    last_status: SourceStatus | None
    last_error: str | None
    api_calls: int | None
    marketplace: dict[str, Any] | None
    removed_at: datetime | None
    scan_version: int
    problems: list[str] | None
    origin: SourceOrigin = SourceOrigin.FILE
    marketplace_key: str | None = None
    plugin: str | None = None
    pinned_commit: str | None = None


class MarketplaceSourceResponse(BaseModel):
    """A source as the API shows it (SPEC §5.3); index facts come from the stored clone target."""

    key: str
    url: str
    github: str | None
    ref: str | None
    artifacts_root: str | None
    artifact_count: int | None
    indexing_strategy: Strategy | None
    last_indexed_tree_sha: str | None
    last_indexed_at: datetime | None
    last_status: SourceStatus | None
    last_error: str | None
    api_calls: int | None
    origin: SourceOrigin = SourceOrigin.FILE
    marketplace: str | None = None  # the marketplace source key of a plugin source
    plugin: str | None = None  # its entry name
    pinned_commit: str | None = None

    @classmethod
    def from_record(cls, record: SourceRecord) -> MarketplaceSourceResponse:
        target = record.clone_target
        return cls(
            key=record.key,
            url=record.url,
            github=record.github,
            ref=record.ref,
            origin=record.origin,
            marketplace=record.marketplace_key,
            plugin=record.plugin,
            pinned_commit=record.pinned_commit,
            artifacts_root=target.artifacts_root if target else None,
            artifact_count=target.artifact_count if target else None,
            indexing_strategy=target.strategy if target else None,
            last_indexed_tree_sha=target.tree_sha if target else None,
            last_indexed_at=record.last_indexed_at,
            last_status=record.last_status,
            last_error=record.last_error,
            api_calls=record.api_calls,
        )


@dataclass(frozen=True, slots=True)
class SourceFinding:
    """One finding of one live catalog entry, as `Catalog.findings` lists them."""

    source_key: str
    artifact_type: ArtifactType
    path: str
    name: str
    finding: Finding

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_key": self.source_key,
            "artifact_type": self.artifact_type.value,
            "path": self.path,
            "name": self.name,
            **self.finding.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where a source lives: what a push notification is matched against."""

    key: str
    url: str
    github: str | None
    ref: str | None


class PushEvent(BaseModel):
    """A GitHub push delivery the webhook receiver accepted; pending until `handled_at` is set."""

    id: int
    delivery_id: str
    repository: str
    ref: str | None
    after_sha: str | None
    source_keys: list[str]
    received_at: datetime
    handled_at: datetime | None


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one `write_scan` changed: entry rows written, and how many got each status."""

    rows_affected: int
    new: int
    updated: int
    unchanged: int
    removed: int


def normalize_url(url: str | URL) -> URL:
    """The URL with a driver that is installed: a bare `postgresql://` means psycopg2 here.

    SQLAlchemy 2.1 maps `postgresql://` to psycopg 3, which is not a dependency.
    """
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy's "begin" hook emits BEGIN instead of the sqlite3 module, so writes can be
    # BEGIN IMMEDIATE (the module would start a deferred transaction on the first write).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    _enable_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL, and much faster
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _enable_wal(cursor: sqlite3.Cursor) -> None:
    # WAL is recorded in the file. When the first connections of a new file switch it at once,
    # SQLite answers the loser "locked" straight away (a lock upgrade would deadlock, so the busy
    # timeout does not apply); by the retry the winner has switched it and the pragma is a no-op.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_on_begin(connection: Connection) -> None:
    writing = connection.get_execution_options().get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _now() -> datetime:
    return datetime.now(UTC)


def _storable(value: Any) -> Any:
    # PostgreSQL text and jsonb cannot hold U+0000; odd repository files sometimes do. Neither
    # backend's driver can encode a lone surrogate (a JSON `\udce9` escape in a manifest): it
    # becomes U+FFFD rather than failing the source's write on every run.
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value.replace("\x00", ""))
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def _scan_status(previous: Row[*tuple[Any, ...]] | None, entry: CatalogEntry) -> ArtifactStatus:
    if previous is None or previous.status == ArtifactStatus.REMOVED:
        return ArtifactStatus.NEW
    if previous.content_sha != entry.content_sha:
        return ArtifactStatus.UPDATED
    return ArtifactStatus.UNCHANGED


class Catalog:
    """The catalog database. Every method runs in its own short transaction; thread-safe."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(
                f"the catalog needs SQLite or PostgreSQL, not {engine.dialect.name} ({engine.url})"
            )
        self.engine = engine
        if self.dialect == "sqlite" and not event.contains(engine, "begin", _sqlite_on_begin):
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})

    @classmethod
    def from_url(cls, url: str | URL) -> Catalog:
        """A catalog on `sqlite:///path` (its folder is created) or `postgresql://...`."""
        parsed = normalize_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        else:
            # Each write reads what the previous write of its source committed, after its lock.
            engine = sa.create_engine(parsed, pool_pre_ping=True, isolation_level="READ COMMITTED")
        return cls(engine)

    @classmethod
    def from_env(cls) -> Catalog:
        """The catalog at `SKILLMEAT_INDEX_URL`, default `./skillmeat_index.sqlite`."""
        return cls.from_url(os.environ.get(INDEX_URL_ENV) or DEFAULT_INDEX_URL)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close the pooled connections (a test drops its database after this)."""
        self.engine.dispose()

    def begin_write(self) -> AbstractContextManager[Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE) for catalog-wide updates beside a scan."""
        return self._writer.begin()

    def migrate(self) -> None:
        """Bring the schema to the latest revision; a no-op when it is, safe from many processes."""
        with self._writer.begin() as conn:
            # Concurrent starts queue here (SQLite: BEGIN IMMEDIATE) and find the work done.
            self._advisory_lock(conn, _MIGRATION_LOCK_ID)
            upgrade_to_head(conn)

    # -- sources ------------------------------------------------------------------------------

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
            entry.key: _storable(
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
            for start in range(0, len(keys), 500):
                stored.update(
                    conn.execute(
                        sa.select(sources.c.key).where(sources.c.key.in_(keys[start : start + 500]))
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
                    .values(removed_at=_now(), last_status=SourceStatus.REMOVED)
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

    # -- scans --------------------------------------------------------------------------------

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
        commit_sha, tree_sha = self._check_scan(source_key, entries, clone_target)
        scanned = {entry.key: entry for entry in entries}
        counts: Counter[ArtifactStatus] = Counter()
        with self._writer.begin() as conn:
            source_row = self._lock_active_source(conn, source_key)
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
                row = _storable(
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
                    marketplace=_storable(marketplace),
                    problems=_storable(list(problems)),
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
            row = self._lock_active_source(conn, source_key)
            if expected_version is not None and row.scan_version != expected_version:
                return False
            conn.execute(
                sa.update(sources).where(sources.c.key == source_key).values(_storable(values))
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
            row = self._lock_active_source(conn, source_key)
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
                    last_indexed_at=checked_at or _now(),
                    api_calls=api_calls,
                )
            )

    # -- push events (webhook deliveries) ------------------------------------------------------

    def record_push_event(
        self,
        delivery_id: str,
        *,
        repository: str,
        ref: str | None,
        after_sha: str | None,
        source_keys: Sequence[str],
        received_at: datetime | None = None,
    ) -> bool:
        """Store an accepted push delivery; False when `delivery_id` was stored before (a replay).

        One statement: of two receivers storing the same delivery at once, exactly one gets True.
        """
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        values = _storable(
            {
                "delivery_id": delivery_id,
                "repository": repository,
                "ref": ref,
                "after_sha": after_sha,
                "source_keys": sorted(set(source_keys)),
            }
        )
        statement = (
            dialect_insert(push_events)
            .values(**values, received_at=received_at or _now())
            .on_conflict_do_nothing(index_elements=["delivery_id"])
            .returning(push_events.c.id)
        )
        with self._writer.begin() as conn:
            inserted = conn.execute(statement).scalar_one_or_none()
        return inserted is not None

    def pending_push_events(
        self, *, limit: int = 1000, exclude_ids: Iterable[int] = ()
    ) -> list[PushEvent]:
        """Events not yet handled, oldest first, at most `limit`, leaving out `exclude_ids`."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = (
            sa.select(push_events)
            .where(push_events.c.handled_at.is_(None))
            .order_by(push_events.c.id)
            .limit(limit)
        )
        excluded = sorted(set(exclude_ids))
        if excluded:
            query = query.where(push_events.c.id.not_in(excluded))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [PushEvent.model_validate(row._asdict()) for row in rows]

    def mark_push_events_handled(
        self, ids: Iterable[int], *, handled_at: datetime | None = None
    ) -> int:
        """Set `handled_at` on these events (already handled ones keep theirs); how many changed."""
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        with self._writer.begin() as conn:
            result = conn.execute(
                sa.update(push_events)
                .where(push_events.c.id.in_(wanted), push_events.c.handled_at.is_(None))
                .values(handled_at=handled_at or _now())
            )
        return result.rowcount

    # -- reads --------------------------------------------------------------------------------

    def get_source(self, key: str) -> SourceRecord | None:
        """The stored source row, also when removed; None when there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.key == key)).one_or_none()
        return SourceRecord.model_validate(row._asdict()) if row else None

    def indexed_commits(self, keys: Sequence[str]) -> dict[str, str | None]:
        """The last indexed commit of each of `keys` (None: never indexed, removed or unknown)."""
        wanted = sorted(set(keys))
        found: dict[str, str | None] = dict.fromkeys(wanted)
        with self.engine.connect() as conn:
            # in slices: SQLite allows a limited number of bound parameters per statement
            for start in range(0, len(wanted), 500):
                rows = conn.execute(
                    sa.select(sources.c.key, sources.c.last_indexed_commit_sha).where(
                        sources.c.key.in_(wanted[start : start + 500]),
                        sources.c.removed_at.is_(None),
                    )
                )
                found.update({row.key: row.last_indexed_commit_sha for row in rows})
        return found

    def marketplace_records(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored marketplace records of those of `keys` that are live sources from the file
        and whose last good scan found a marketplace file."""
        wanted = sorted(set(keys))
        found: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                rows = conn.execute(
                    sa.select(sources.c.key, sources.c.marketplace).where(
                        sources.c.key.in_(wanted[start : start + 500]),
                        sources.c.removed_at.is_(None),
                        sources.c.origin == SourceOrigin.FILE,
                        sources.c.marketplace.is_not(None),
                    )
                )
                found.update({row.key: row.marketplace for row in rows if row.marketplace})
        return found

    def source_locations(self) -> list[SourceLocation]:
        """Where every source that is not removed lives (key, url, github, ref), by key."""
        query = (
            sa.select(sources.c.key, sources.c.url, sources.c.github, sources.c.ref)
            .where(sources.c.removed_at.is_(None))
            .order_by(sources.c.key)
        )
        with self.engine.connect() as conn:
            return [SourceLocation(*row) for row in conn.execute(query)]

    def list_sources(self, *, include_removed: bool = False) -> list[SourceRecord]:
        query = sa.select(sources).order_by(sources.c.key)
        if not include_removed:
            query = query.where(sources.c.removed_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [SourceRecord.model_validate(row._asdict()) for row in rows]

    def source_responses(self, *, include_removed: bool = False) -> list[MarketplaceSourceResponse]:
        return [
            MarketplaceSourceResponse.from_record(record)
            for record in self.list_sources(include_removed=include_removed)
        ]

    def entries(self, source_key: str, include_removed: bool = False) -> list[CatalogEntry]:
        """The catalog entries of a source, by path."""
        query = (
            sa.select(*_ENTRY_COLUMNS)
            .where(catalog_entries.c.source_key == source_key)
            .order_by(catalog_entries.c.path, catalog_entries.c.artifact_type)
        )
        if not include_removed:
            query = query.where(catalog_entries.c.status != ArtifactStatus.REMOVED)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [CatalogEntry.model_validate(row._asdict()) for row in rows]

    def previous_entries(self, source_key: str) -> dict[ArtifactKey, CatalogEntry]:
        """The live entries of the last good scan by key, to reuse those whose content_sha held."""
        return {entry.key: entry for entry in self.entries(source_key)}

    def risk_counts(self, keys: Sequence[str] | None = None) -> dict[str, RiskCounts]:
        """How many live entries of each source have each risk: every source with an entry, or
        every one of `keys` (zeros included)."""
        risk = catalog_entries.c.risk
        query = (
            sa.select(catalog_entries.c.source_key, risk, sa.func.count().label("n"))
            .where(catalog_entries.c.status != ArtifactStatus.REMOVED, risk.is_not(None))
            .group_by(catalog_entries.c.source_key, risk)
        )
        wanted = sorted(set(keys)) if keys is not None else None
        # in slices: SQLite allows a limited number of bound parameters per statement
        slices = (
            [query]
            if wanted is None
            else [
                query.where(catalog_entries.c.source_key.in_(wanted[start : start + 500]))
                for start in range(0, len(wanted), 500)
            ]
        )
        counts: dict[str, dict[str, int]] = {key: {} for key in wanted or ()}
        with self.engine.connect() as conn:
            for statement in slices:
                for row in conn.execute(statement):
                    counts.setdefault(row.source_key, {})[row.risk] = row.n
        return {key: RiskCounts(**by_risk) for key, by_risk in counts.items()}

    def findings(
        self,
        *,
        source_key: str | None = None,
        min_severity: Severity | None = None,
        limit: int | None = None,
    ) -> list[SourceFinding]:
        """Findings of live entries, at least `min_severity`, highest severity first.

        Then by source, path, type, file and line; at most `limit`.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        risks = Severity.at_least(min_severity or Severity.LOW)
        query = sa.select(
            *catalog_entries.c["source_key", "artifact_type", "path", "name", "findings"]
        ).where(
            catalog_entries.c.status != ArtifactStatus.REMOVED,
            catalog_entries.c.risk.in_([r.value for r in risks]),
        )
        if source_key is not None:
            query = query.where(catalog_entries.c.source_key == source_key)
        found: list[SourceFinding] = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                entry = _FindingsRow.model_validate(row._asdict())
                found.extend(
                    SourceFinding(row.source_key, entry.artifact_type, row.path, row.name, f)
                    for f in entry.findings or ()
                    if f.severity in risks
                )
        found.sort(
            key=lambda f: (
                -f.finding.severity.rank,
                f.source_key,
                f.path,
                f.artifact_type.value,
                f.finding.file,
                f.finding.line,
                f.finding.rule,
            )
        )
        return found if limit is None else found[:limit]

    # -- helpers ------------------------------------------------------------------------------

    def _advisory_lock(self, conn: Connection, lock_id: int) -> None:
        # SQLite needs none: BEGIN IMMEDIATE already made this the only writer.
        if self.dialect == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_id)))

    @staticmethod
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

    @staticmethod
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


class _FindingsRow(BaseModel):
    artifact_type: ArtifactType
    findings: list[Finding] | None


def _match(source_key: str, key: ArtifactKey) -> dict[str, Any]:
    return {"match_source_key": source_key, "match_type": key[0], "match_path": key[1]}


def _update_entry_by_key() -> sa.Update:
    return sa.update(catalog_entries).where(
        catalog_entries.c.source_key == sa.bindparam("match_source_key"),
        catalog_entries.c.artifact_type == sa.bindparam("match_type"),
        catalog_entries.c.path == sa.bindparam("match_path"),
    )
