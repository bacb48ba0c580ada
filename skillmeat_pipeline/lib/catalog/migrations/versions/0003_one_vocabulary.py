"""One name per concept: a written scan is `scanned` (was `ok`), REST calls are `api_calls`.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # RENAME COLUMN: PostgreSQL, and SQLite from 3.25 (Python 3.11 ships a newer one)
    op.execute("ALTER TABLE sources RENAME COLUMN api_calls_last_run TO api_calls")
    op.execute("UPDATE sources SET last_status = 'scanned' WHERE last_status = 'ok'")


def downgrade() -> None:
    raise NotImplementedError("catalog migrations only go forward; re-index into a new database")
