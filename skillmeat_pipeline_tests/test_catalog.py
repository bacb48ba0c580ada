"""The catalog database on SQLite and PostgreSQL: migrations, scan writes, search, concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event

from skillmeat_pipeline.lib.catalog.errors import (
    SourceRemovedError,
    StaleHeadError,
    UnknownSourceError,
)
from skillmeat_pipeline.lib.catalog.migrations import SCRIPT_LOCATION, VERSION_TABLE
from skillmeat_pipeline.lib.catalog.records import WriteResult
from skillmeat_pipeline.lib.catalog.search import search_catalog
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.catalog.tables import catalog_entries, metadata, sources
from skillmeat_pipeline.lib.core.models import (
    ArtifactStatus,
    ArtifactType,
    CatalogEntry,
    SourceStatus,
)
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.core.strategy import CloneTarget, Strategy, common_root

BACKENDS = ("sqlite", "postgresql")
SOURCE = "acme/skills"
OTHER = "acme/agents"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WAIT = 10.0  # seconds before a test gives up on an event that should come at once

NEW, UPDATED, UNCHANGED, REMOVED = (
    ArtifactStatus.NEW,
    ArtifactStatus.UPDATED,
    ArtifactStatus.UNCHANGED,
    ArtifactStatus.REMOVED,
)


def config(key: str, **fields: Any) -> SourceConfig:
    return SourceConfig(key=key, url=f"https://git.example.com/{key}.git", **fields)


def entry(
    path: str,
    *,
    sha: str | None = None,
    source: str = SOURCE,
    kind: ArtifactType = ArtifactType.SKILL,
    name: str | None = None,
    description: str | None = None,
    tags: tuple[str, ...] = (),
    deep: str | None = None,
) -> CatalogEntry:
    name = name or path.rsplit("/", 1)[-1]
    return CatalogEntry(
        source_key=source,
        path=path,
        artifact_type=kind,
        name=name,
        description=description,
        tags=list(tags),
        confidence=90,
        content_sha=sha or f"sha-{path}",
        search_text=" ".join(part for part in (name, description, *tags) if part),
        deep_search_text=deep,
    )


def clone_target(entries: list[CatalogEntry], commit: str, at: datetime = T0) -> CloneTarget:
    paths = sorted(e.path for e in entries)
    return CloneTarget(
        strategy=Strategy.SPARSE_MANIFEST,
        patterns=[f"{p}/SKILL.md" for p in paths],
        artifacts_root=common_root(paths),
        artifact_paths=paths,
        commit_sha=commit,
        tree_sha=f"tree-{commit}",
        computed_at=at,
    )


def scan(
    catalog: Catalog,
    entries: list[CatalogEntry],
    commit: str,
    *,
    source: str = SOURCE,
    target: CloneTarget | None = None,
    api_calls: int = 0,
    marketplace: dict[str, Any] | None = None,
    at: datetime = T0,
) -> WriteResult:
    target = target or clone_target(entries, commit, at)
    return catalog.write_scan(
        source,
        entries,
        clone_target=target,
        api_calls=api_calls,
        marketplace=marketplace,
        indexed_at=at,
    )


def stored(catalog: Catalog, source: str = SOURCE) -> dict[str, tuple[str, str, str, str]]:
    """path -> (status, content_sha, first_seen_commit, indexed_commit), removed rows included."""
    return {
        e.path: (e.status, e.content_sha, e.first_seen_commit, e.indexed_commit)
        for e in catalog.entries(source, include_removed=True)
    }


def start(name: str, work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `work` in a named daemon thread; the dict gets its "result" or its "error".

    Daemon, so that a write stuck on a lock fails its test instead of hanging the run.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread, outcome


def run_together(works: list[Callable[[], Any]]) -> list[Any]:
    """Start every work at the same moment in its own thread; their results, or the first error."""
    barrier = threading.Barrier(len(works))

    def synchronised(work: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            barrier.wait(WAIT)
            return work()

        return run

    started = [start(f"worker-{n}", synchronised(work)) for n, work in enumerate(works)]
    deadline = time.monotonic() + 2 * WAIT
    for thread, _ in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    outcomes = [outcome for _, outcome in started]
    for outcome in outcomes:
        assert outcome, "a worker did not finish in time"
        if "error" in outcome:
            raise outcome["error"]
    return [outcome["result"] for outcome in outcomes]


def hold_thread_before(
    catalog: Catalog, thread: str, statement_start: str, *, until: threading.Event, why: str
) -> threading.Event:
    """Make the thread named `thread` wait before its statement starting with `statement_start`
    (inside its transaction) until `until` is set, failing with `why` after WAIT; the returned
    event is set once it waits there."""
    holding = threading.Event()

    @event.listens_for(catalog.engine, "before_cursor_execute")
    def hold(_conn, _cursor, statement, _parameters, _context, _executemany):
        if threading.current_thread().name == thread and statement.startswith(statement_start):
            holding.set()
            if not until.wait(WAIT):
                raise AssertionError(why)

    return holding


def run_first_then_second(
    catalog: Catalog,
    first: Callable[[], Any],
    second: Callable[[], Any],
    *,
    hold_first_before: str,
    postgres_lock: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run `first` up to its statement starting with `hold_first_before`, still in its
    transaction; then start `second` and let `first` go on once `second` is about to take the write
    lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: the statement holding `postgres_lock`). If the lock
    did not keep them apart, `second` would read what `first` has not committed yet.
    """
    lock_statement = "BEGIN IMMEDIATE" if catalog.dialect == "sqlite" else postgres_lock
    first_is_holding, second_is_at_the_lock = threading.Event(), threading.Event()

    @event.listens_for(catalog.engine, "before_cursor_execute")
    def interleave(_conn, _cursor, statement, _parameters, _context, _executemany):
        thread = threading.current_thread().name
        if thread == "first" and statement.startswith(hold_first_before):
            first_is_holding.set()
            if not second_is_at_the_lock.wait(WAIT):
                raise AssertionError("the second transaction never reached the lock")
        elif thread == "second" and lock_statement in statement:
            second_is_at_the_lock.set()

    first_thread, first_outcome = start("first", first)
    assert first_is_holding.wait(WAIT), "the first transaction never got to its hold point"
    second_thread, second_outcome = start("second", second)
    first_thread.join(WAIT)
    second_thread.join(WAIT)
    event.remove(catalog.engine, "before_cursor_execute", interleave)
    return first_outcome, second_outcome


def schema_revision(catalog: Catalog) -> str | None:
    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


HEAD = ScriptDirectory(SCRIPT_LOCATION).get_current_head()


# -- configuration and migrations ------------------------------------------------------------


def test_bare_postgresql_urls_use_psycopg2() -> None:
    assert Catalog.from_url("postgresql://u@db/x").engine.url.drivername == "postgresql+psycopg2"
    assert Catalog.from_url("postgres://u@db/x").engine.url.drivername == "postgresql+psycopg2"
    explicit = Catalog.from_url("postgresql+psycopg2://u@db/x")
    assert explicit.engine.url.drivername == "postgresql+psycopg2"


def test_catalog_defaults_to_a_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SKILLMEAT_INDEX_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    catalog = Catalog.from_env()
    catalog.migrate()
    catalog.dispose()
    assert (tmp_path / "skillmeat_index.sqlite").is_file()

    monkeypatch.setenv("SKILLMEAT_INDEX_URL", f"sqlite:///{tmp_path / 'data' / 'index.db'}")
    catalog = Catalog.from_env()
    catalog.migrate()
    catalog.dispose()
    assert (tmp_path / "data" / "index.db").is_file()


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrate_is_idempotent(backend: str, empty_database: Callable) -> None:
    with empty_database(backend) as url:
        catalog = Catalog.from_url(url)
        assert schema_revision(catalog) is None
        catalog.migrate()
        catalog.upsert_sources([config(SOURCE)])
        catalog.migrate()
        assert schema_revision(catalog) == HEAD
        assert [s.key for s in catalog.list_sources()] == [SOURCE]
        catalog.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrading_a_0002_catalog_keeps_its_rows_in_the_new_vocabulary(
    backend: str, empty_database: Callable
) -> None:
    with empty_database(backend) as url:
        catalog = Catalog.from_url(url)
        upgrade_to(catalog, "0002")
        with catalog.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO sources (key, url, exclude, deep_indexing, last_status, "
                    "api_calls_last_run) VALUES (:key, 'https://h/x.git', '[]', false, 'ok', 3)"
                ),
                {"key": SOURCE},
            )
        catalog.migrate()
        assert schema_revision(catalog) == HEAD
        record = catalog.get_source(SOURCE)
        assert record is not None
        assert (record.last_status, record.api_calls) == (SourceStatus.SCANNED, 3)
        catalog.dispose()


def write_as_stored_then(catalog: Catalog, entries: list[CatalogEntry], commit: str) -> None:
    """A first scan's rows as a catalog at an older revision holds them: only its columns."""
    with catalog.engine.begin() as conn:
        columns = {column["name"] for column in sa.inspect(conn).get_columns("catalog_entries")}
        rows = [
            e.model_dump(mode="json")
            | {
                "status": NEW,
                "first_seen_commit": commit,
                "indexed_commit": commit,
                "indexed_at": T0,
            }
            for e in entries
        ]
        conn.execute(
            sa.insert(catalog_entries), [{k: v for k, v in r.items() if k in columns} for r in rows]
        )
        conn.execute(
            sa.update(sources)
            .where(sources.c.key.in_({e.source_key for e in entries}))
            .values(last_indexed_commit_sha=commit, last_status=SourceStatus.SCANNED)
        )


def insert_source_row(catalog: Catalog, key: str) -> None:
    """A source row as every revision since 0003 can hold it (no `upsert_sources`: that writes
    the columns of the newest revision)."""
    with catalog.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sources (key, url, exclude, deep_indexing) "
                "VALUES (:key, :url, '[]', false)"
            ),
            {"key": key, "url": f"https://git.example.com/{key}.git"},
        )


def upgrade_to(catalog: Catalog, revision: str) -> None:
    with catalog.engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", SCRIPT_LOCATION)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


@contextmanager
def catalog_at_revision(
    url: str, revision: str, entries: list[CatalogEntry], commit: str = "c1"
) -> Iterator[Catalog]:
    """A catalog at schema `revision` holding one scan of `entries` as that revision stored it,
    with a row for each of their sources; disposed on exit. The test migrates it."""
    catalog = Catalog.from_url(url)
    try:
        upgrade_to(catalog, revision)
        for key in sorted({e.source_key for e in entries}):
            insert_source_row(catalog, key)
        write_as_stored_then(catalog, entries, commit)
        yield catalog
    finally:
        catalog.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_type_joins_the_entry_key_without_losing_rows(
    backend: str, empty_database: Callable
) -> None:
    pdf = entry("skills/pdf", description="Extracts tables from PDF files")
    with (
        empty_database(backend) as url,
        # the key was (source_key, path)
        catalog_at_revision(url, "0003", [pdf, entry("skills/xlsx")]) as catalog,
    ):
        catalog.migrate()

        assert schema_revision(catalog) == HEAD
        assert stored(catalog) == {
            "skills/pdf": (NEW, "sha-skills/pdf", "c1", "c1"),
            "skills/xlsx": (NEW, "sha-skills/xlsx", "c1", "c1"),
        }
        assert [h.path for h in search_catalog(catalog, "tables")] == ["skills/pdf"]  # index kept
        plugin = entry("skills/pdf", kind=ArtifactType.PLUGIN, description="Spreadsheet suite")
        scan(catalog, [pdf, plugin, entry("skills/xlsx")], "c2")  # the index follows writes
        assert [h.artifact_type for h in search_catalog(catalog, "spreadsheet")] == [
            ArtifactType.PLUGIN
        ]
        assert schema_differences(catalog) == []


def test_a_folder_that_is_a_skill_and_a_plugin_is_two_entries(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    skill, plugin = entry("kit"), entry("kit", kind=ArtifactType.PLUGIN, sha="tree-kit")

    scan(catalog, [skill, plugin], "c1")
    scan(catalog, [skill], "c2")

    rows = {(e.artifact_type, e.status) for e in catalog.entries(SOURCE, include_removed=True)}
    assert rows == {
        (ArtifactType.SKILL, ArtifactStatus.UNCHANGED),
        (ArtifactType.PLUGIN, ArtifactStatus.REMOVED),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_processes_migrating_at_once_all_succeed(backend: str, empty_database: Callable) -> None:
    with empty_database(backend) as url:
        # Six first connections also race to switch the new SQLite file to WAL.
        catalogs = [Catalog.from_url(url) for _ in range(6)]
        run_together([catalog.migrate for catalog in catalogs])
        assert schema_revision(catalogs[0]) == HEAD
        for catalog in catalogs:
            catalog.dispose()


def schema_differences(catalog: Catalog) -> list[Any]:
    """What the migrated database has that the catalog's table definitions do not, or lacks."""
    full_text_index = {"search_vector", "ix_catalog_entries_search_vector"}

    def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
        return name in metadata.tables if type_ == "table" else name not in full_text_index

    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_name": include_name, "compare_type": True}
        )
        return list(compare_metadata(context, metadata))


def test_migrations_create_the_tables_the_catalog_queries(catalog: Catalog) -> None:
    assert schema_differences(catalog) == []


# -- scan writes and statuses ----------------------------------------------------------------


def test_first_scan_stores_every_entry_as_new(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    result = scan(catalog, [entry("skills/a"), entry("skills/b")], "c1", api_calls=3)

    assert result == WriteResult(rows_affected=2, new=2, updated=0, unchanged=0, removed=0)
    assert stored(catalog) == {
        "skills/a": (NEW, "sha-skills/a", "c1", "c1"),
        "skills/b": (NEW, "sha-skills/b", "c1", "c1"),
    }
    [first, _] = catalog.entries(SOURCE)
    assert first.indexed_at == T0
    assert first.model_dump(exclude={"status", "first_seen_commit", "indexed_commit"}) == entry(
        "skills/a"
    ).model_dump(exclude={"status", "first_seen_commit", "indexed_commit"}) | {"indexed_at": T0}
    record = catalog.get_source(SOURCE)
    assert record is not None
    assert (record.last_status, record.last_indexed_commit_sha, record.api_calls) == (
        SourceStatus.SCANNED,
        "c1",
        3,
    )


def test_rescan_statuses_are_computed_against_the_stored_rows(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    scan(catalog, [entry("skills/a"), entry("skills/b"), entry("skills/c")], "c1")

    second = [entry("skills/a", sha="a2"), entry("skills/b"), entry("skills/d")]
    result = scan(catalog, second, "c2")

    assert result == WriteResult(rows_affected=4, new=1, updated=1, unchanged=1, removed=1)
    assert stored(catalog) == {
        "skills/a": (UPDATED, "a2", "c1", "c2"),
        "skills/b": (UNCHANGED, "sha-skills/b", "c1", "c2"),
        "skills/c": (REMOVED, "sha-skills/c", "c1", "c1"),
        "skills/d": (NEW, "sha-skills/d", "c2", "c2"),
    }
    assert sorted(catalog.previous_entries(SOURCE)) == [
        (ArtifactType.SKILL, p) for p in ("skills/a", "skills/b", "skills/d")
    ]
    assert [e.path for e in catalog.entries(SOURCE)] == ["skills/a", "skills/b", "skills/d"]

    # An already removed row is not removed again.
    assert scan(catalog, second, "c3") == WriteResult(
        rows_affected=3, new=0, updated=0, unchanged=3, removed=0
    )


def test_a_path_that_comes_back_is_new_and_keeps_its_first_seen_commit(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    scan(catalog, [entry("skills/a"), entry("skills/b")], "c1")
    scan(catalog, [entry("skills/a")], "c2")

    result = scan(catalog, [entry("skills/a"), entry("skills/b")], "c3")

    assert result == WriteResult(rows_affected=2, new=1, updated=0, unchanged=1, removed=0)
    assert stored(catalog)["skills/b"] == (NEW, "sha-skills/b", "c1", "c3")


def test_write_scan_rejects_inconsistent_input(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    with pytest.raises(ValueError, match="acme/agents"):
        scan(catalog, [entry("skills/a", source=OTHER)], "c1")
    with pytest.raises(ValueError, match="twice: skills/a"):
        scan(catalog, [entry("skills/a"), entry("skills/a")], "c1")
    # the clone target is the one record of the commit and tree a scan read
    without_commit = clone_target([entry("skills/a")], "c1").model_copy(update={"commit_sha": None})
    with pytest.raises(ValueError, match="names no commit"):
        scan(catalog, [entry("skills/a")], "c1", target=without_commit)
    assert stored(catalog) == {}


def test_unknown_and_removed_sources_are_not_written(catalog: Catalog) -> None:
    with pytest.raises(UnknownSourceError, match="upsert_sources"):
        scan(catalog, [entry("skills/a", source="nobody/here")], "c1", source="nobody/here")
    catalog.upsert_sources([config(SOURCE)])
    scan(catalog, [entry("skills/a")], "c1")
    catalog.mark_sources_removed([SOURCE])

    with pytest.raises(SourceRemovedError):
        scan(catalog, [entry("skills/b")], "c2")
    with pytest.raises(SourceRemovedError):
        catalog.record_failure(SOURCE, "boom")
    assert stored(catalog) == {"skills/a": (REMOVED, "sha-skills/a", "c1", "c1")}


def test_text_with_nul_characters_is_stored_without_them(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    odd = entry("skills/a", description="bad\x00byte").model_copy(
        update={"metadata": {"k": "v\x00"}}
    )
    scan(catalog, [odd], "c1", marketplace={"name": "m\x00"})

    [back] = catalog.entries(SOURCE)
    assert (back.description, back.metadata) == ("badbyte", {"k": "v"})
    assert search_catalog(catalog, "badbyte")[0].path == "skills/a"


# -- failures keep the last good scan --------------------------------------------------------


def test_a_constraint_violation_mid_write_leaves_the_previous_scan_intact(
    catalog: Catalog,
) -> None:
    catalog.upsert_sources([config(SOURCE)])
    scan(catalog, [entry("skills/a"), entry("skills/b"), entry("skills/c")], "c1")
    entries_before, source_before = catalog.entries(SOURCE), catalog.get_source(SOURCE)
    # What a buggy extractor might hand over: the check constraint refuses it mid-statement.
    broken = CatalogEntry.model_construct(
        **(entry("skills/b", sha="b2").model_dump() | {"confidence": 101})
    )

    with pytest.raises(sa.exc.IntegrityError):
        scan(
            catalog,
            [entry("skills/new", description="zeppelin"), entry("skills/a", sha="a2"), broken],
            "c2",
        )

    assert catalog.entries(SOURCE, include_removed=True) == entries_before
    assert catalog.get_source(SOURCE) == source_before
    assert search_catalog(catalog, "zeppelin") == []


def test_a_failure_after_the_entries_are_written_rolls_them_back(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    scan(catalog, [entry("skills/a", description="gondola"), entry("skills/b")], "c1")
    entries_before, source_before = catalog.entries(SOURCE), catalog.get_source(SOURCE)

    @event.listens_for(catalog.engine, "before_cursor_execute")
    def fail_on_source_update(_conn, _cursor, statement, _parameters, _context, _executemany):
        if statement.startswith("UPDATE sources"):
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected failure"):
        scan(catalog, [entry("skills/a", sha="a2", description="zeppelin")], "c2")
    event.remove(catalog.engine, "before_cursor_execute", fail_on_source_update)

    assert catalog.entries(SOURCE, include_removed=True) == entries_before
    assert catalog.get_source(SOURCE) == source_before
    assert search_catalog(catalog, "zeppelin") == []
    assert [h.path for h in search_catalog(catalog, "gondola")] == ["skills/a"]


def test_record_failure_keeps_the_entries_of_the_last_good_scan(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    scan(catalog, [entry("skills/a", description="gondola")], "c1", api_calls=2)
    entries_before = catalog.entries(SOURCE)

    catalog.record_failure(SOURCE, "clone timed out after 300 s; falling back", api_calls=4)

    record = catalog.get_source(SOURCE)
    assert record is not None
    assert (record.last_status, record.last_error, record.api_calls) == (
        SourceStatus.FAILED,
        "clone timed out after 300 s; falling back",
        4,
    )
    assert (record.last_indexed_commit_sha, record.last_indexed_at) == ("c1", T0)
    assert catalog.entries(SOURCE) == entries_before
    assert [h.path for h in search_catalog(catalog, "gondola")] == ["skills/a"]

    catalog.record_failure(SOURCE, "x" * 20_000)
    record = catalog.get_source(SOURCE)
    assert record is not None and record.last_error is not None
    assert len(record.last_error) < 8100 and record.last_error.endswith("12000 chars cut]")

    scan(catalog, [entry("skills/a", description="gondola")], "c2")
    record = catalog.get_source(SOURCE)
    assert record is not None
    assert (record.last_status, record.last_error) == (SourceStatus.SCANNED, None)


def test_record_current_touches_only_the_source_row(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    scan(catalog, [entry("skills/a")], "c1", api_calls=5)
    catalog.record_failure(SOURCE, "transient")
    entries_before = catalog.entries(SOURCE)
    later = T0 + timedelta(hours=1)

    catalog.record_current(SOURCE, "c1", api_calls=0, checked_at=later)

    record = catalog.get_source(SOURCE)
    assert record is not None
    assert (record.last_status, record.last_indexed_at, record.api_calls) == (
        SourceStatus.CURRENT,
        later,
        0,
    )
    assert (record.last_error, record.last_indexed_commit_sha) == (None, "c1")
    assert catalog.entries(SOURCE) == entries_before
    with pytest.raises(StaleHeadError, match="c2"):
        catalog.record_current(SOURCE, "c2", api_calls=0)


# -- sources ----------------------------------------------------------------------------------


def test_removing_a_source_marks_its_rows_removed_and_keeps_them(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE), config(OTHER)])
    scan(catalog, [entry("skills/a", description="terraform")], "c1")
    scan(catalog, [entry("agents/b", source=OTHER, description="terraform")], "c1", source=OTHER)

    assert catalog.mark_sources_removed([OTHER, "never/registered"]) == 1
    assert catalog.mark_sources_removed([OTHER]) == 0

    record = catalog.get_source(OTHER)
    assert record is not None and record.removed_at is not None
    assert record.last_status == SourceStatus.REMOVED
    assert stored(catalog, OTHER) == {"agents/b": (REMOVED, "sha-agents/b", "c1", "c1")}
    assert catalog.entries(OTHER) == []
    assert [h.source_key for h in search_catalog(catalog, "terraform")] == [SOURCE]
    assert [s.key for s in catalog.list_sources()] == [SOURCE]
    assert [s.key for s in catalog.list_sources(include_removed=True)] == [OTHER, SOURCE]
    assert [r.key for r in catalog.source_responses()] == [SOURCE]

    # Listed again: back, with an index that has to be rebuilt before it counts as current.
    catalog.upsert_sources([config(SOURCE), config(OTHER)])
    record = catalog.get_source(OTHER)
    assert record is not None
    assert (record.removed_at, record.last_status, record.last_indexed_commit_sha) == (
        None,
        None,
        None,
    )
    assert record.clone_target is not None  # the next strategy selection still knows the count
    assert scan(catalog, [entry("agents/b", source=OTHER)], "c2", source=OTHER).new == 1
    assert stored(catalog, OTHER) == {"agents/b": (NEW, "sha-agents/b", "c1", "c2")}


def test_upsert_sources_updates_config_and_a_change_forces_a_reindex(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE, github="acme/skills")])
    scan(catalog, [entry("skills/a")], "c1")

    catalog.upsert_sources([config(SOURCE, github="acme/skills")])
    record = catalog.get_source(SOURCE)
    assert record is not None and record.last_indexed_commit_sha == "c1"

    catalog.upsert_sources([config(SOURCE, root_hint="skills", exclude=["**/drafts/**"])])
    record = catalog.get_source(SOURCE)
    assert record is not None
    assert (record.github, record.root_hint, record.exclude) == (None, "skills", ["**/drafts/**"])
    assert (record.last_indexed_commit_sha, record.last_status) == (None, SourceStatus.SCANNED)
    assert [e.path for e in catalog.entries(SOURCE)] == ["skills/a"]
    with pytest.raises(StaleHeadError):
        catalog.record_current(SOURCE, "c1", api_calls=0)
    with pytest.raises(ValueError, match="duplicate source keys: acme/skills"):
        catalog.upsert_sources([config(SOURCE), config(SOURCE)])


def test_source_syncs_at_the_same_time_do_not_collide(catalog: Catalog) -> None:
    first = [config(f"acme/repo{i}") for i in range(5)]
    second = [config(f"acme/repo{i}", ref="main") for i in range(5)]

    first_outcome, second_outcome = run_first_then_second(
        catalog,
        partial(catalog.upsert_sources, first),
        partial(catalog.upsert_sources, second),
        hold_first_before="INSERT INTO sources",
        postgres_lock="pg_advisory_xact_lock",
    )

    assert first_outcome == second_outcome == {"result": None}
    assert [(s.key, s.ref) for s in catalog.list_sources()] == [(c.key, "main") for c in second]


def test_source_response_is_null_until_indexed_then_follows_the_clone_target(
    catalog: Catalog,
) -> None:
    catalog.upsert_sources([config(SOURCE, github="acme/skills", ref="main")])
    [response] = catalog.source_responses()
    assert response.model_dump(mode="json") == {
        "key": SOURCE,
        "url": "https://git.example.com/acme/skills.git",
        "github": "acme/skills",
        "ref": "main",
        "artifacts_root": None,
        "artifact_count": None,
        "indexing_strategy": None,
        "last_indexed_tree_sha": None,
        "last_indexed_at": None,
        "last_status": None,
        "last_error": None,
        "api_calls": None,
        "origin": "file",
        "marketplace": None,
        "plugin": None,
        "pinned_commit": None,
    }

    scan(catalog, [entry("skills/a"), entry("skills/b")], "c1", api_calls=3)

    [response] = catalog.source_responses()
    shown = response.model_dump(exclude={"key", "url", "github", "ref", "last_error"})
    assert shown == {
        "artifacts_root": "skills",
        "artifact_count": 2,
        "indexing_strategy": Strategy.SPARSE_MANIFEST,
        "last_indexed_tree_sha": "tree-c1",
        "last_indexed_at": T0,
        "last_status": SourceStatus.SCANNED,
        "api_calls": 3,
        "origin": "file",
        "marketplace": None,
        "plugin": None,
        "pinned_commit": None,
    }


def test_clone_target_round_trips_through_the_database_exactly(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    entries = [entry("skills/ünï"), entry(".mcp.json#github", kind=ArtifactType.MCP)]
    target = CloneTarget(
        strategy=Strategy.SPARSE_DIRECTORY,
        patterns=["skills/ünï/**", ".mcp.json"],
        artifacts_root=None,
        artifact_paths=[".mcp.json#github", "skills/ünï"],
        commit_sha="c" * 40,
        tree_sha="t" * 40,
        computed_at=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5.5))),
    )
    marketplace = {"name": "acme", "plugins": [{"name": "p", "source": "./p"}], "n": 1.5}

    scan(catalog, entries, "c" * 40, target=target, marketplace=marketplace)

    record = catalog.get_source(SOURCE)
    assert record is not None and record.clone_target is not None
    assert record.clone_target == target
    assert record.clone_target.model_dump_json() == target.model_dump_json()
    assert record.marketplace == marketplace
    with catalog.engine.connect() as conn:
        raw = conn.execute(sa.select(sources.c.clone_target)).scalar_one()
    assert raw == target.model_dump(mode="json")


# -- concurrency --------------------------------------------------------------------------------


def test_writes_to_one_source_never_interleave(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    first_scan = [entry(f"skills/s{i:02}", sha="x") for i in range(20)]
    second_scan = [entry(f"skills/s{i:02}", sha="y") for i in range(10, 30)]

    first_outcome, second_outcome = run_first_then_second(
        catalog,
        lambda: scan(catalog, first_scan, "c1"),
        lambda: scan(catalog, second_scan, "c2"),
        hold_first_before="UPDATE sources",
        postgres_lock="FOR UPDATE",
    )

    assert first_outcome == {"result": WriteResult(20, new=20, updated=0, unchanged=0, removed=0)}
    # The second write saw the first one whole: had it read before the first commit, all its
    # rows would be new and s00-s09 would still be live.
    assert second_outcome == {
        "result": WriteResult(30, new=10, updated=10, unchanged=0, removed=10)
    }
    rows = stored(catalog)
    assert {p for p, row in rows.items() if row[0] != REMOVED} == {e.path for e in second_scan}
    assert {row[1] for p, row in rows.items() if row[0] != REMOVED} == {"y"}
    record = catalog.get_source(SOURCE)
    assert record is not None and record.last_indexed_commit_sha == "c2"


def test_reads_do_not_wait_for_a_write(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    scan(catalog, [entry("skills/a", description="gondola")], "c1")
    reads_done = threading.Event()
    writing = hold_thread_before(
        catalog, "writer", "UPDATE sources", until=reads_done, why="reads waited for the write"
    )

    writer, outcome = start(
        "writer", lambda: scan(catalog, [entry("skills/b", description="zeppelin")], "c2")
    )
    assert writing.wait(WAIT)
    assert [e.path for e in catalog.entries(SOURCE)] == ["skills/a"]
    assert [h.path for h in search_catalog(catalog, "gondola")] == ["skills/a"]
    assert search_catalog(catalog, "zeppelin") == []
    reads_done.set()
    writer.join(WAIT)

    assert "error" not in outcome
    assert [h.path for h in search_catalog(catalog, "zeppelin")] == ["skills/b"]


def test_writes_to_different_sources_run_concurrently(catalog: Catalog) -> None:
    keys = [f"acme/repo{i}" for i in range(4)]
    catalog.upsert_sources([config(key) for key in keys])

    def rescan_four_times(key: str) -> list[WriteResult]:
        return [
            scan(catalog, [entry(f"skills/{n % 2}", source=key)], f"{key}@{n}", source=key)
            for n in range(4)
        ]

    results = dict(
        zip(keys, run_together([partial(rescan_four_times, key) for key in keys]), strict=True)
    )

    for key in keys:
        assert [(r.new, r.removed) for r in results[key]] == [(1, 0), (1, 1), (1, 1), (1, 1)]
        assert [e.path for e in catalog.entries(key)] == ["skills/1"]
        record = catalog.get_source(key)
        assert record is not None and record.last_indexed_commit_sha == f"{key}@3"


def test_postgres_writes_to_different_sources_do_not_wait_for_each_other(
    postgres_catalog: Catalog,
) -> None:
    catalog = postgres_catalog
    catalog.upsert_sources([config(SOURCE), config(OTHER)])
    other_is_done = threading.Event()
    first_is_writing = hold_thread_before(
        catalog,
        "first",
        "UPDATE sources",
        until=other_is_done,
        why="the other source's write waited for this one",
    )

    first, outcome = start("first", lambda: scan(catalog, [entry("skills/a")], "c1"))
    assert first_is_writing.wait(WAIT)
    # Runs to its commit while the first write still holds its transaction open.
    scan(catalog, [entry("agents/b", source=OTHER)], "c1", source=OTHER)
    other_is_done.set()
    first.join(WAIT)

    assert "error" not in outcome
    assert [e.path for e in catalog.entries(SOURCE)] == ["skills/a"]
    assert [e.path for e in catalog.entries(OTHER)] == ["agents/b"]


# -- plugin sources (SPEC §2.1, §5.3) ---------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrading_to_plugin_sources_keeps_rows_as_file_sources(
    backend: str, empty_database: Callable
) -> None:
    from skillmeat_pipeline.lib.core.plugin_sources import PluginSourceConfig

    pdf = entry("skills/pdf", description="Extracts tables")
    with empty_database(backend) as url, catalog_at_revision(url, "0004", [pdf]) as catalog:
        catalog.migrate()

        assert schema_revision(catalog) == HEAD
        [record] = catalog.list_sources()
        assert (record.key, record.origin, record.marketplace_key, record.pinned_commit) == (
            SOURCE,
            "file",
            None,
            None,
        )
        assert stored(catalog) == {"skills/pdf": (NEW, "sha-skills/pdf", "c1", "c1")}
        plugin = PluginSourceConfig(
            key=f"pdf@{SOURCE}",
            url="https://git.example.com/o/pdf.git",
            marketplace_key=SOURCE,
            plugin="pdf",
            pinned_commit="b" * 40,
        )
        catalog.upsert_sources([config(SOURCE), plugin])
        response = {r.key: r for r in catalog.source_responses()}[plugin.key]
        assert (response.origin, response.marketplace, response.plugin, response.pinned_commit) == (
            "marketplace",
            SOURCE,
            "pdf",
            "b" * 40,
        )
        assert schema_differences(catalog) == []


def test_skipped_entries_are_rows_with_their_reason_until_fetchable(catalog: Catalog) -> None:
    from skillmeat_pipeline.lib.core.plugin_sources import PluginSourceConfig, SkippedEntry

    key = f"pkg@{SOURCE}"
    catalog.upsert_skipped_sources([SkippedEntry(key, SOURCE, "pkg", "npm: not fetched", "npm:x")])
    [row] = catalog.source_responses()
    assert (row.key, row.last_status, row.last_error, row.marketplace, row.url) == (
        key,
        SourceStatus.SKIPPED,
        "npm: not fetched",
        SOURCE,
        "npm:x",
    )
    fetchable = PluginSourceConfig(
        key=key, url="https://git.example.com/o/pkg.git", marketplace_key=SOURCE, plugin="pkg"
    )
    catalog.upsert_sources([fetchable])
    [row] = catalog.source_responses()
    assert (row.last_status, row.last_error, row.url) == (None, None, fetchable.url)
    catalog.mark_sources_removed([key])
    assert catalog.source_responses() == []


def test_a_changed_pin_forgets_the_indexed_commit(catalog: Catalog) -> None:
    from skillmeat_pipeline.lib.core.plugin_sources import PluginSourceConfig

    def pinned(sha: str) -> PluginSourceConfig:
        return PluginSourceConfig(
            key=SOURCE, url="https://h/o/r.git", marketplace_key="m", plugin="p", pinned_commit=sha
        )

    catalog.upsert_sources([pinned("c1")])
    scan(catalog, [entry("skills/a")], "c1")
    catalog.upsert_sources([pinned("c1")])
    assert catalog.indexed_commits([SOURCE]) == {SOURCE: "c1"}
    catalog.upsert_sources([pinned("c2")])
    assert catalog.indexed_commits([SOURCE]) == {SOURCE: None}
