"""The database connection of the catalog: its URL, SQLite's settings, and `CatalogEngine`, the
base of every part of `Catalog` (the engine, its writer and the locks that order writes).

Write transactions start with `BEGIN IMMEDIATE` on SQLite, so a second writer waits on the busy
timeout instead of failing when it upgrades a stale read snapshot; WAL lets readers go on meanwhile.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

INDEX_URL_ENV = "SKILLMEAT_INDEX_URL"
DEFAULT_INDEX_URL = "sqlite:///skillmeat_index.sqlite"  # relative to the working directory
SQLITE_BUSY_TIMEOUT_SECONDS = 60.0
_WRITE_OPTION = "skillmeat_write"


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


def key_slices(keys: Sequence[str]) -> Iterator[Sequence[str]]:
    """`keys` in slices of 500: SQLite allows a limited number of bound parameters per statement."""
    for start in range(0, len(keys), 500):
        yield keys[start : start + 500]


def utc_now() -> datetime:
    return datetime.now(UTC)


class CatalogEngine:
    """The engine a catalog runs on (SQLite or PostgreSQL), with the hooks and writer it needs."""

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

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close the pooled connections (a test drops its database after this)."""
        self.engine.dispose()

    def begin_write(self) -> AbstractContextManager[Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE) for catalog-wide updates beside a scan."""
        return self._writer.begin()

    def _advisory_lock(self, conn: Connection, lock_id: int) -> None:
        # SQLite needs none: BEGIN IMMEDIATE already made this the only writer.
        if self.dialect == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_id)))
