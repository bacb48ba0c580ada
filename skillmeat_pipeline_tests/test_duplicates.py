"""Duplicate clusters (SPEC §5.5) on both backends: the same skill in three sources, one changed
later, a source removed; search shows each cluster once; migration 0008 keeps rows."""

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from skillmeat_pipeline.cli import main
from skillmeat_pipeline.lib.catalog import duplicates
from skillmeat_pipeline.lib.catalog.duplicates import (
    Assignment,
    DuplicateRow,
    assign_clusters,
    refresh_duplicates,
)
from skillmeat_pipeline.lib.catalog.search import search_catalog
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.catalog.tables import catalog_entries
from skillmeat_pipeline.lib.core.models import ArtifactType
from skillmeat_pipeline_tests.test_catalog import (
    BACKENDS,
    T0,
    config,
    entry,
    insert_source_row,
    scan,
    schema_differences,
    schema_revision,
    upgrade_to,
    write_as_stored_then,
)

FIRST, SECOND, THIRD = "first/skills", "second/skills", "third/skills"
PDF = "skills/pdf"


def clusters(catalog: Catalog) -> dict[str, tuple[Any, Any]]:
    """source_key of each row of the pdf skill -> (duplicate_of source, copies)."""
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            sa.select(*catalog_entries.c["source_key", "duplicate_of", "copies"]).where(
                catalog_entries.c.path == PDF
            )
        ).all()
    return {r.source_key: ((r.duplicate_of or {}).get("source_key"), r.copies) for r in rows}


def three_copies(catalog: Catalog) -> None:
    """The same pdf skill (one tree SHA) copied into three sources, seen an hour apart."""
    catalog.upsert_sources([config(FIRST), config(SECOND), config(THIRD)])
    for hours, source in enumerate((SECOND, FIRST, THIRD)):  # SECOND is seen first
        copy = entry(PDF, sha="tree-pdf", source=source, description="Extract PDF tables")
        other = entry(f"skills/own-{hours}", source=source)
        scan(catalog, [copy, other], f"c{hours}", source=source, at=T0 + timedelta(hours=hours))


def test_the_same_skill_in_three_sources_is_one_cluster_with_the_earliest_seen_canonical(
    catalog: Catalog,
) -> None:
    three_copies(catalog)
    stats = refresh_duplicates(catalog)

    assert clusters(catalog) == {SECOND: (None, 3), FIRST: (SECOND, 3), THIRD: (SECOND, 3)}
    assert (stats.live_rows, stats.clusters, stats.duplicate_rows) == (6, 1, 2)
    assert stats.largest_cluster == 3
    assert refresh_duplicates(catalog).rows_written == 0  # nothing changed: nothing written
    # search shows the cluster once, as its canonical copy, unless every copy is asked for
    assert [(h.source_key, h.copies) for h in search_catalog(catalog, "pdf")] == [(SECOND, 3)]
    assert sorted(h.source_key for h in search_catalog(catalog, "pdf", all_copies=True)) == sorted(
        [FIRST, SECOND, THIRD]
    )


def test_a_copy_changed_later_leaves_the_cluster(catalog: Catalog) -> None:
    three_copies(catalog)
    refresh_duplicates(catalog)
    changed = entry(PDF, sha="tree-pdf-2", source=THIRD, description="Extract PDF tables")
    scan(catalog, [changed], "c9", source=THIRD, at=T0 + timedelta(days=1))

    refresh_duplicates(catalog)

    assert clusters(catalog) == {SECOND: (None, 2), FIRST: (SECOND, 2), THIRD: (None, 1)}
    assert sorted(h.source_key for h in search_catalog(catalog, "pdf")) == [SECOND, THIRD]


def test_a_row_a_scan_changes_while_clusters_are_computed_keeps_its_values(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    three_copies(catalog)
    changed = entry(PDF, sha="tree-pdf-2", source=THIRD, description="Extract PDF tables")

    def scan_between_read_and_write(rows: Any) -> Any:
        assignments = assign_clusters(rows)
        scan(catalog, [changed], "c9", source=THIRD, at=T0 + timedelta(days=1))
        return assignments

    monkeypatch.setattr(duplicates, "assign_clusters", scan_between_read_and_write)
    refresh_duplicates(catalog)

    # THIRD's row was read as a copy, then changed: it is not written until the next refresh
    assert clusters(catalog) == {SECOND: (None, 3), FIRST: (SECOND, 3), THIRD: (None, None)}
    monkeypatch.undo()
    refresh_duplicates(catalog)
    assert clusters(catalog) == {SECOND: (None, 2), FIRST: (SECOND, 2), THIRD: (None, 1)}


def test_when_the_canonical_source_is_removed_the_canonical_copy_moves(catalog: Catalog) -> None:
    three_copies(catalog)
    refresh_duplicates(catalog)
    catalog.mark_sources_removed([SECOND])

    refresh_duplicates(catalog)

    # FIRST was seen an hour after SECOND, THIRD two hours after; the removed row gets nothing
    assert clusters(catalog) == {SECOND: (None, None), FIRST: (None, 2), THIRD: (FIRST, 2)}
    assert [h.source_key for h in search_catalog(catalog, "pdf")] == [FIRST]


def test_ties_are_broken_by_key_and_kinds_never_mix() -> None:
    def row(i: int, source: str, kind: str = "skill") -> DuplicateRow:
        return DuplicateRow(i, source, kind, "kit", "tree-kit", T0)

    # b and a seen at once: a's key is first; the plugin with the same tree is its own cluster
    result = assign_clusters([row(1, "b"), row(2, "a"), row(3, "a", "plugin")])
    pointer = {"source_key": "a", "artifact_type": "skill", "path": "kit"}
    assert result == {
        1: Assignment(duplicate_of=pointer, copies=2),
        2: Assignment(duplicate_of=None, copies=2),
        3: Assignment(duplicate_of=None, copies=1),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0008_keeps_rows_and_dates_them_by_their_last_index(
    backend: str, empty_database: Any
) -> None:
    with empty_database(backend) as url:
        catalog = Catalog.from_url(url)
        upgrade_to(catalog, "0004")
        insert_source_row(catalog, FIRST)
        pdf = entry(PDF, source=FIRST, description="Extract PDF tables")
        plugin = entry(PDF, source=FIRST, kind=ArtifactType.PLUGIN, sha="tree-kit")
        write_as_stored_then(catalog, [pdf, plugin], "c1")

        catalog.migrate()

        assert schema_revision(catalog) != "0004"
        assert schema_differences(catalog) == []
        with catalog.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*catalog_entries.c["artifact_type", "first_seen_at", "quality", "copies"])
            ).all()
        assert sorted((r.artifact_type, r.first_seen_at, r.quality, r.copies) for r in rows) == [
            ("plugin", T0, None, None),
            ("skill", T0, None, None),
        ]
        assert [h.path for h in search_catalog(catalog, "tables")] == [
            PDF
        ]  # the full-text index holds
        catalog.dispose()


def test_cli_search_shows_a_cluster_once_unless_all_copies(
    sqlite_catalog: Catalog, sqlite_catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    three_copies(sqlite_catalog)
    refresh_duplicates(sqlite_catalog)
    monkeypatch.setenv("SKILLMEAT_INDEX_URL", sqlite_catalog_url)

    def sources_found(*options: str) -> list[str]:
        result = CliRunner().invoke(main, ["search", "pdf", "--json", *options])
        assert result.exit_code == 0, result.output
        return sorted(hit["source_key"] for hit in json.loads(result.stdout))

    assert sources_found() == [SECOND]
    assert sources_found("--all-copies") == [FIRST, SECOND, THIRD]
