"""Push events: GitHub push deliveries accepted by the webhook receiver, until a sensor runs them.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "push_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        # X-GitHub-Delivery: a redelivery or a replayed request carries the same one
        sa.Column("delivery_id", sa.Text(), nullable=False),
        sa.Column("repository", sa.Text(), nullable=False),
        sa.Column("ref", sa.Text()),
        sa.Column("after_sha", sa.Text()),
        sa.Column("source_keys", JSON, nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("handled_at", TIMESTAMP),
        sa.UniqueConstraint("delivery_id", name="uq_push_events_delivery_id"),
    )
    op.create_index("ix_push_events_handled_at", "push_events", ["handled_at"])


def downgrade() -> None:
    raise NotImplementedError("catalog migrations only go forward; re-index into a new database")
