"""Sources get `scan_version` (the optimistic check of scan writes) and `problems`.

`scan_version` grows by one with every scan written and every configuration change: a run writes
its scan only if the version is still the one it read when it started, so an older, slower run
never replaces a newer scan's rows. `problems` holds what the last scan found wrong with the tree
itself (paths that cannot be indexed), outside any one artifact.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("sources") as table:
        table.add_column(
            sa.Column("scan_version", sa.Integer(), nullable=False, server_default="0")
        )
        table.add_column(sa.Column("problems", JSON))


def downgrade() -> None:
    raise NotImplementedError("catalog migrations only go forward; re-index into a new database")
