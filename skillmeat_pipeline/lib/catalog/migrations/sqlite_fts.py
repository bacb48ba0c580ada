"""The SQLite full-text index's triggers, shared by the revisions that create or rebuild the table.

A revision that rebuilds `catalog_entries` on SQLite (which cannot drop a constraint in place)
drops the triggers with the old table and creates them again here.
"""

from __future__ import annotations

from alembic import op

FTS_COLUMNS = ("name", "title", "description", "tags", "search_text", "deep_search_text")


def create_fts_triggers() -> None:
    """Keep `catalog_entries_fts` in step with inserts, deletes and text updates."""
    columns = ", ".join(FTS_COLUMNS)
    new_values = ", ".join(f"new.{c}" for c in FTS_COLUMNS)
    old_values = ", ".join(f"old.{c}" for c in FTS_COLUMNS)
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
