"""One search language on both backends (README "Searching"): both index `search_document`.

`search_document` holds the tokens Python produces for an entry (`catalog.query`): name, title,
tags, description, type, path and the start of the deep text. SQLite's FTS5 table indexes that
column alone with the `ascii` tokenizer (it splits on the spaces only, the tokens being letters
and digits); PostgreSQL's `search_vector` becomes the set of those tokens, read without a
text-search parser or dictionary. The document of every stored row is computed here.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from skillmeat_pipeline.lib.catalog.migrations.sqlite_fts import FTS_COLUMNS, create_fts_triggers
from skillmeat_pipeline.lib.catalog.query import search_document

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 500


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS catalog_entries_fts_{trigger}")
        op.execute("DROP TABLE catalog_entries_fts")
    else:
        op.drop_index("ix_catalog_entries_search_vector", "catalog_entries")
        op.drop_column("catalog_entries", "search_vector")
    # ADD COLUMN keeps the table (and on SQLite its rowids, which the FTS table refers to).
    op.add_column(
        "catalog_entries",
        sa.Column("search_document", sa.Text(), nullable=False, server_default=""),
    )
    _fill_documents()
    if dialect == "sqlite":
        columns = ", ".join(FTS_COLUMNS)
        op.execute(
            f"CREATE VIRTUAL TABLE catalog_entries_fts USING fts5({columns}, "
            "content='catalog_entries', content_rowid='id', tokenize='ascii')"
        )
        op.execute("INSERT INTO catalog_entries_fts(catalog_entries_fts) VALUES ('rebuild')")
        create_fts_triggers(FTS_COLUMNS)
    else:
        # Tokens are separated by single spaces, so no array element is empty.
        op.execute(
            "ALTER TABLE catalog_entries ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
            "(array_to_tsvector(string_to_array(search_document, ' '))) STORED"
        )
        op.create_index(
            "ix_catalog_entries_search_vector",
            "catalog_entries",
            ["search_vector"],
            postgresql_using="gin",
        )


def _fill_documents() -> None:
    conn = op.get_bind()
    entries = sa.table(
        "catalog_entries",
        *(
            sa.column(name)
            for name in ("id", "artifact_type", "path", "name", "title", "description")
        ),
        sa.column("tags", sa.JSON()),
        sa.column("deep_search_text"),
        sa.column("search_document"),
    )
    last_id = -1
    while True:
        rows = conn.execute(
            sa.select(entries).where(entries.c.id > last_id).order_by(entries.c.id).limit(_BATCH)
        ).all()
        if not rows:
            return
        conn.execute(
            sa.update(entries).where(entries.c.id == sa.bindparam("match_id")),
            [
                {
                    "match_id": row.id,
                    "search_document": search_document(
                        artifact_type=row.artifact_type,
                        path=row.path,
                        name=row.name,
                        title=row.title,
                        description=row.description,
                        tags=row.tags or [],
                        deep_search_text=row.deep_search_text,
                    ),
                }
                for row in rows
            ],
        )
        last_id = rows[-1].id


def downgrade() -> None:
    raise NotImplementedError("catalog migrations only go forward; re-index into a new database")
