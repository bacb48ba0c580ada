"""The SQLite full-text index's triggers, shared by the revisions that create or rebuild the table.

The revisions that create the index (0001, 0009) make its triggers here, as does one that rebuilds
`catalog_entries` on SQLite (which cannot drop a constraint in place) and so drops them with the
old table; each names the columns indexed at its revision.
"""

from __future__ import annotations

from alembic import op

# The indexed columns up to 0008; from 0009 on, the one column `search_document`.
FTS_COLUMNS_0001 = ("name", "title", "description", "tags", "search_text", "deep_search_text")
FTS_COLUMNS = ("search_document",)


def create_fts_triggers(indexed: tuple[str, ...]) -> None:
    """Keep `catalog_entries_fts` (of the `indexed` columns) in step with inserts, deletes and
    text updates."""
    columns = ", ".join(indexed)
    new_values = ", ".join(f"new.{c}" for c in indexed)
    old_values = ", ".join(f"old.{c}" for c in indexed)
    op.execute(
        "CREATE TRIGGER catalog_entries_fts_insert AFTER INSERT ON catalog_entries BEGIN "
        f"INSERT INTO catalog_entries_fts(rowid, {columns}) VALUES (new.id, {new_values}); END"
    )
    op.execute(
        "CREATE TRIGGER catalog_entries_fts_delete AFTER DELETE ON catalog_entries BEGIN "
        f"INSERT INTO catalog_entries_fts(catalog_entries_fts, rowid, {columns}) "
        f"VALUES ('delete', old.id, {old_values}); END"
    )
    # Only text changes touch the index: marking rows removed rewrites status, not text.
    op.execute(
        f"CREATE TRIGGER catalog_entries_fts_update AFTER UPDATE OF {columns} "
        "ON catalog_entries BEGIN "
        f"INSERT INTO catalog_entries_fts(catalog_entries_fts, rowid, {columns}) "
        f"VALUES ('delete', old.id, {old_values}); "
        f"INSERT INTO catalog_entries_fts(rowid, {columns}) VALUES (new.id, {new_values}); END"
    )
