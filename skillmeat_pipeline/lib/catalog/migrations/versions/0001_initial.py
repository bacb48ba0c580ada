"""Initial catalog: sources, catalog entries and their full-text index.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from skillmeat_pipeline.lib.catalog.migrations.sqlite_fts import (
    FTS_COLUMNS_0001,
    create_fts_triggers,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
# SQLite only aliases the rowid for INTEGER PRIMARY KEY; the FTS index is keyed by that rowid, and
# an implicit rowid may be renumbered by VACUUM.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("github", sa.Text()),
        sa.Column("ref", sa.Text()),
        sa.Column("root_hint", sa.Text()),
        sa.Column("exclude", JSON, nullable=False),
        sa.Column("deep_indexing", sa.Boolean(), nullable=False),
        sa.Column("clone_target", JSON),
        sa.Column("artifacts_root", sa.Text()),
        sa.Column("artifact_count", sa.Integer()),
        sa.Column("indexing_strategy", sa.Text()),
        sa.Column("last_indexed_commit_sha", sa.Text()),
        sa.Column("last_indexed_tree_sha", sa.Text()),
        sa.Column("last_indexed_at", TIMESTAMP),
        sa.Column("last_status", sa.Text()),
        sa.Column("last_error", sa.Text()),
        sa.Column("api_calls_last_run", sa.Integer()),
        sa.Column("marketplace", JSON),
        sa.Column("removed_at", TIMESTAMP),
    )
    op.create_table(
        "catalog_entries",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("source_key", sa.Text(), sa.ForeignKey("sources.key"), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("artifact_type", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("title", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("tools", JSON, nullable=False),
        sa.Column("model", sa.Text()),
        sa.Column("plugin_path", sa.Text()),
        sa.Column("confidence", sa.Integer(), nullable=False),
        sa.Column("signals", JSON, nullable=False),
        sa.Column("problems", JSON, nullable=False),
        sa.Column("content_sha", sa.Text(), nullable=False),
        sa.Column("manifest_path", sa.Text()),
        sa.Column("upstream_url", sa.Text()),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("deep_search_text", sa.Text()),
        sa.Column("deep_index_files", JSON, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("first_seen_commit", sa.Text()),
        sa.Column("indexed_commit", sa.Text()),
        sa.Column("indexed_at", TIMESTAMP),
        sa.Column("metadata", JSON, nullable=False),
        sa.UniqueConstraint("source_key", "path", name="uq_catalog_entries_source_key_path"),
        sa.CheckConstraint(
            "confidence BETWEEN 0 AND 100", name="ck_catalog_entries_confidence_range"
        ),
        sa.CheckConstraint(
            "status IN ('new', 'updated', 'unchanged', 'removed')",
            name="ck_catalog_entries_status_known",
        ),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _create_sqlite_fts()
    elif dialect == "postgresql":
        _create_postgres_tsvector()
    else:
        raise NotImplementedError(f"the catalog supports SQLite and PostgreSQL, not {dialect}")


def _create_sqlite_fts() -> None:
    columns = ", ".join(FTS_COLUMNS_0001)
    # External content: the text lives once, in catalog_entries; the triggers keep the index in
    # step. Porter stemming so that "hooks" finds "hook", as PostgreSQL's english config does.
    op.execute(
        f"CREATE VIRTUAL TABLE catalog_entries_fts USING fts5({columns}, "
        "content='catalog_entries', content_rowid='id', "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    create_fts_triggers(FTS_COLUMNS_0001)


def _create_postgres_tsvector() -> None:
    # A tsvector may not exceed 1 MiB: each input is capped (deep text is up to 1 MB per
    # artifact) so that no artifact can fail the write of its whole source.
    weighted = [
        ("coalesce(name, '')", "A"),
        ("coalesce(title, '')", "A"),
        ("tags", "B"),
        ("left(coalesce(description, ''), 20000)", "B"),
        ("left(search_text, 100000)", "C"),
        ("left(coalesce(deep_search_text, ''), 200000)", "D"),
    ]
    expression = " || ".join(
        f"setweight(to_tsvector('english'::regconfig, {text}), '{weight}')"
        for text, weight in weighted
    )
    op.add_column(
        "catalog_entries",
        sa.Column("search_vector", postgresql.TSVECTOR(), sa.Computed(expression, persisted=True)),
    )
    op.create_index(
        "ix_catalog_entries_search_vector",
        "catalog_entries",
        ["search_vector"],
        postgresql_using="gin",
    )


def downgrade() -> None:
    raise NotImplementedError("catalog migrations only go forward; re-index into a new database")
