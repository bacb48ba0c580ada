"""Security findings on catalog entries (SPEC §5.5): `findings` (JSON) and `risk`.

Rows stored before have no findings (null: not computed, which is not "none found"). Every source
forgets its indexed commit so that its next run reads it again and computes them; entries whose
content did not change are still reused, only their findings are added.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    # ADD COLUMN of a nullable column: no table copy on SQLite, its full-text triggers stay
    op.add_column("catalog_entries", sa.Column("findings", JSON))
    op.add_column("catalog_entries", sa.Column("risk", sa.Text()))
    # per-source counts by risk (sources list, partition metadata) and the findings listing
    op.create_index("ix_catalog_entries_source_key_risk", "catalog_entries", ["source_key", "risk"])
    op.execute("UPDATE sources SET last_indexed_commit_sha = NULL")


def downgrade() -> None:
    raise NotImplementedError("catalog migrations only go forward; re-index into a new database")
