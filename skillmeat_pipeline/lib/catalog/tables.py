"""The catalog's tables as queries see them (SPEC §5.3), and what their columns can hold.

The schema itself is created and changed by the alembic revisions in `migrations/`; a test compares
the two. The full-text index (FTS5 table or tsvector column) is known to the migrations only.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from typing_extensions import override  # typing.override from Python 3.12

MAX_ERROR_CHARS = 8000  # of a source's `last_error`
_SURROGATE = re.compile("[\ud800-\udfff]")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite's DATETIME keeps no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    @override
    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: give a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    @override
    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
metadata = sa.MetaData()

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("github", sa.Text()),
    sa.Column("ref", sa.Text()),
    sa.Column("root_hint", sa.Text()),
    sa.Column("exclude", _JSON, nullable=False),
    sa.Column("deep_indexing", sa.Boolean(), nullable=False),
    sa.Column("clone_target", _JSON),
    sa.Column("artifacts_root", sa.Text()),
    sa.Column("artifact_count", sa.Integer()),
    sa.Column("indexing_strategy", sa.Text()),
    sa.Column("last_indexed_commit_sha", sa.Text()),
    sa.Column("last_indexed_tree_sha", sa.Text()),
    sa.Column("last_indexed_at", UTCDateTime()),
    sa.Column("last_status", sa.Text()),
    sa.Column("last_error", sa.Text()),
    sa.Column("api_calls", sa.Integer()),
    sa.Column("marketplace", _JSON),
    sa.Column("removed_at", UTCDateTime()),
    # grows with every scan written and every configuration change: the optimistic check that
    # keeps an older, slower run from replacing a newer scan (`ScanSupersededError`)
    sa.Column("scan_version", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("problems", _JSON),  # the last scan's problems with the tree, outside any artifact
    sa.Column("origin", sa.Text(), nullable=False, server_default="file"),
    sa.Column("marketplace_key", sa.Text()),
    sa.Column("plugin", sa.Text()),
    sa.Column("pinned_commit", sa.Text()),
    sa.Index("ix_sources_marketplace_key", "marketplace_key"),
)

catalog_entries = sa.Table(
    "catalog_entries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("source_key", sa.Text(), sa.ForeignKey("sources.key"), nullable=False),
    sa.Column("path", sa.Text(), nullable=False),
    sa.Column("artifact_type", sa.Text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("title", sa.Text()),
    sa.Column("description", sa.Text()),
    sa.Column("tags", _JSON, nullable=False),
    sa.Column("tools", _JSON, nullable=False),
    sa.Column("model", sa.Text()),
    sa.Column("plugin_path", sa.Text()),
    sa.Column("confidence", sa.Integer(), nullable=False),
    sa.Column("signals", _JSON, nullable=False),
    sa.Column("problems", _JSON, nullable=False),
    sa.Column("findings", _JSON),
    sa.Column("risk", sa.Text()),
    sa.Column("content_sha", sa.Text(), nullable=False),
    sa.Column("manifest_path", sa.Text()),
    sa.Column("upstream_url", sa.Text()),
    sa.Column("search_text", sa.Text(), nullable=False),
    sa.Column("deep_search_text", sa.Text()),
    # what both backends' full-text index holds (migration 0009): `query.search_document`
    sa.Column("search_document", sa.Text(), nullable=False, server_default=""),
    sa.Column("deep_index_files", _JSON, nullable=False),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("first_seen_commit", sa.Text()),
    sa.Column("indexed_commit", sa.Text()),
    sa.Column("indexed_at", UTCDateTime()),
    sa.Column("metadata", _JSON, nullable=False),
    # SPEC §5.5 (migration 0008): quality from lib/quality; clusters from lib/catalog/duplicates
    sa.Column("quality", sa.Integer()),
    sa.Column("quality_components", _JSON),
    sa.Column("duplicate_of", _JSON),
    sa.Column("copies", sa.Integer()),
    sa.Column("first_seen_at", UTCDateTime()),
    sa.UniqueConstraint(
        "source_key", "artifact_type", "path", name="uq_catalog_entries_source_key_type_path"
    ),
    sa.Index("ix_catalog_entries_content_sha", "content_sha"),
    sa.CheckConstraint("confidence BETWEEN 0 AND 100", name="ck_catalog_entries_confidence_range"),
    sa.CheckConstraint(
        "status IN ('new', 'updated', 'unchanged', 'removed')",
        name="ck_catalog_entries_status_known",
    ),
    sa.Index("ix_catalog_entries_source_key_risk", "source_key", "risk"),
)

push_events = sa.Table(
    "push_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("delivery_id", sa.Text(), nullable=False),
    sa.Column("repository", sa.Text(), nullable=False),
    sa.Column("ref", sa.Text()),
    sa.Column("after_sha", sa.Text()),
    sa.Column("source_keys", _JSON, nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("handled_at", UTCDateTime()),
    sa.UniqueConstraint("delivery_id", name="uq_push_events_delivery_id"),
    sa.Index("ix_push_events_handled_at", "handled_at"),
)


def storable(value: Any) -> Any:
    """`value` (text, or lists and dicts of it) as both backends can store it."""
    # PostgreSQL text and jsonb cannot hold U+0000; odd repository files sometimes do. Neither
    # backend's driver can encode a lone surrogate (a JSON `\udce9` escape in a manifest): it
    # becomes U+FFFD rather than failing the source's write on every run.
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value.replace("\x00", ""))
    if isinstance(value, list):
        return [storable(v) for v in value]
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    return value
