"""Quality and duplicates (SPEC §5.5): `quality`, `quality_components`, `duplicate_of`, `copies`,
and `first_seen_at`, the time a row was first written (the canonical copy of a cluster is the
earliest seen; `indexed_at` moves with every scan, so it cannot say which came first).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    # ADD COLUMN keeps the table (and on SQLite its rowids, so the full-text index still matches).
    op.add_column("catalog_entries", sa.Column("quality", sa.Integer()))
    op.add_column("catalog_entries", sa.Column("quality_components", _JSON))
    op.add_column("catalog_entries", sa.Column("duplicate_of", _JSON))
    op.add_column("catalog_entries", sa.Column("copies", sa.Integer()))
    op.add_column("catalog_entries", sa.Column("first_seen_at", sa.DateTime(timezone=True)))
    # Rows stored before this revision: the best known time is their last index.
    op.execute("UPDATE catalog_entries SET first_seen_at = indexed_at")
    op.create_index("ix_catalog_entries_content_sha", "catalog_entries", ["content_sha"])


def downgrade() -> None:
    raise NotImplementedError("catalog migrations only go forward; re-index into a new database")
