"""Plugin sources (SPEC §2.1, §5.3): which marketplace entry a source comes from, and its pin.

`origin` is `file` for sources of the sources file (every existing row) or `marketplace` for the
plugin sources of an indexed marketplace; those also name their `marketplace_key`, `plugin` (the
entry name) and `pinned_commit` (the entry's `sha`, if any).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN needs no table copy on either backend; existing rows come from the sources file
    op.add_column("sources", sa.Column("origin", sa.Text(), nullable=False, server_default="file"))
    op.add_column("sources", sa.Column("marketplace_key", sa.Text()))
    op.add_column("sources", sa.Column("plugin", sa.Text()))
    op.add_column("sources", sa.Column("pinned_commit", sa.Text()))
    op.create_index("ix_sources_marketplace_key", "sources", ["marketplace_key"])


def downgrade() -> None:
    raise NotImplementedError("catalog migrations only go forward; re-index into a new database")
