"""The catalog database (SPEC §5.2 to §5.4): sources, catalog entries and their search index.

SQLite (a file, FTS5) by default, PostgreSQL (tsvector + GIN) in production, both through
SQLAlchemy Core; the schema is created and changed by the alembic revisions in `migrations/`.
`Catalog` is composed of one part for each kind of work, each in a module of its own:

* `source_list.SourceListWrites`: which sources exist (the sources file, marketplaces);
* `scan_writes.ScanWrites`: one source's scan, failure or unchanged head;
* `push_queue.PushEventQueue`: webhook push deliveries waiting for the sensor;
* `reads.CatalogReads`: sources, entries, risk counts and findings;

on `engine.CatalogEngine`, the engine and the transactions they share. Writes are short
transactions that hold the source they change (SQLite: `BEGIN IMMEDIATE`, one writer at a time;
PostgreSQL: the source's row lock). Slow work (clone, extraction) happens before `write_scan`,
outside any transaction. Tables are in `tables`, what the methods return in `records`, what they
raise in `errors`.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from skillmeat_pipeline.lib.catalog.engine import (
    DEFAULT_INDEX_URL,
    INDEX_URL_ENV,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    normalize_url,
)
from skillmeat_pipeline.lib.catalog.migrations import upgrade_to_head
from skillmeat_pipeline.lib.catalog.push_queue import PushEventQueue
from skillmeat_pipeline.lib.catalog.reads import CatalogReads
from skillmeat_pipeline.lib.catalog.scan_writes import ScanWrites
from skillmeat_pipeline.lib.catalog.source_list import SourceListWrites

# PostgreSQL transaction-level advisory lock serialising schema changes.
_MIGRATION_LOCK_ID = 0x534B4D01


class Catalog(SourceListWrites, ScanWrites, PushEventQueue, CatalogReads):
    """The catalog database. Every method runs in its own short transaction; thread-safe."""

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

    def migrate(self) -> None:
        """Bring the schema to the latest revision; a no-op when it is, safe from many processes."""
        with self._writer.begin() as conn:
            # Concurrent starts queue here (SQLite: BEGIN IMMEDIATE) and find the work done.
            self._advisory_lock(conn, _MIGRATION_LOCK_ID)
            upgrade_to_head(conn)
