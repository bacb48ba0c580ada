"""The catalog key is `(source_key, artifact_type, path)`: one folder can be a skill and a plugin.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

from skillmeat_pipeline.lib.catalog.migrations.sqlite_fts import (
    FTS_COLUMNS_0001,
    create_fts_triggers,
)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OLD = "uq_catalog_entries_source_key_path"
NEW = "uq_catalog_entries_source_key_type_path"
KEY = ["source_key", "artifact_type", "path"]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot drop a constraint: the table is copied (rows and ids kept, so the
        # full-text index still matches) and replaced, which drops its triggers.
        with op.batch_alter_table("catalog_entries", recreate="always") as table:
            table.drop_constraint(OLD, type_="unique")
            table.create_unique_constraint(NEW, KEY)
        create_fts_triggers(FTS_COLUMNS_0001)
    else:
        op.drop_constraint(OLD, "catalog_entries", type_="unique")
        op.create_unique_constraint(NEW, "catalog_entries", KEY)


def downgrade() -> None:
    raise NotImplementedError("catalog migrations only go forward; re-index into a new database")
