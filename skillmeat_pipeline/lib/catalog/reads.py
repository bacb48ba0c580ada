"""Reads of the catalog: sources, their entries, risk counts and findings; none takes a lock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from skillmeat_pipeline.lib.catalog.engine import CatalogEngine, key_slices
from skillmeat_pipeline.lib.catalog.records import (
    MarketplaceSourceResponse,
    SourceFinding,
    SourceLocation,
    SourceOrigin,
    SourceRecord,
)
from skillmeat_pipeline.lib.catalog.tables import catalog_entries, sources
from skillmeat_pipeline.lib.core.findings import Finding, RiskCounts, Severity
from skillmeat_pipeline.lib.core.models import (
    ArtifactKey,
    ArtifactStatus,
    ArtifactType,
    CatalogEntry,
)

_ENTRY_COLUMNS = [catalog_entries.c[name] for name in CatalogEntry.model_fields]


class CatalogReads(CatalogEngine):
    """`Catalog`'s reads, each on a connection of its own."""

    def get_source(self, key: str) -> SourceRecord | None:
        """The stored source row, also when removed; None when there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.key == key)).one_or_none()
        return SourceRecord.model_validate(row._asdict()) if row else None

    def indexed_commits(self, keys: Sequence[str]) -> dict[str, str | None]:
        """The last indexed commit of each of `keys` (None: never indexed, removed or unknown)."""
        found: dict[str, str | None] = dict.fromkeys(sorted(set(keys)))
        found.update(self._live_sources_column(sources.c.last_indexed_commit_sha, keys))
        return found

    def marketplace_records(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored marketplace records of those of `keys` that are live sources from the file
        and whose last good scan found a marketplace file."""
        records = self._live_sources_column(
            sources.c.marketplace,
            keys,
            sources.c.origin == SourceOrigin.FILE,
            sources.c.marketplace.is_not(None),
        )
        return {key: record for key, record in records.items() if record}

    def source_locations(self) -> list[SourceLocation]:
        """Where every source that is not removed lives (key, url, github, ref), by key."""
        query = (
            sa.select(sources.c.key, sources.c.url, sources.c.github, sources.c.ref)
            .where(sources.c.removed_at.is_(None))
            .order_by(sources.c.key)
        )
        with self.engine.connect() as conn:
            return [SourceLocation(*row) for row in conn.execute(query)]

    def list_sources(self, *, include_removed: bool = False) -> list[SourceRecord]:
        query = sa.select(sources).order_by(sources.c.key)
        if not include_removed:
            query = query.where(sources.c.removed_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [SourceRecord.model_validate(row._asdict()) for row in rows]

    def source_responses(self, *, include_removed: bool = False) -> list[MarketplaceSourceResponse]:
        return [
            MarketplaceSourceResponse.from_record(record)
            for record in self.list_sources(include_removed=include_removed)
        ]

    def entries(self, source_key: str, include_removed: bool = False) -> list[CatalogEntry]:
        """The catalog entries of a source, by path."""
        query = (
            sa.select(*_ENTRY_COLUMNS)
            .where(catalog_entries.c.source_key == source_key)
            .order_by(catalog_entries.c.path, catalog_entries.c.artifact_type)
        )
        if not include_removed:
            query = query.where(catalog_entries.c.status != ArtifactStatus.REMOVED)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [CatalogEntry.model_validate(row._asdict()) for row in rows]

    def previous_entries(self, source_key: str) -> dict[ArtifactKey, CatalogEntry]:
        """The live entries of the last good scan by key, to reuse those whose content_sha held."""
        return {entry.key: entry for entry in self.entries(source_key)}

    def risk_counts(self, keys: Sequence[str] | None = None) -> dict[str, RiskCounts]:
        """How many live entries of each source have each risk: every source with an entry, or
        every one of `keys` (zeros included)."""
        risk = catalog_entries.c.risk
        query = (
            sa.select(catalog_entries.c.source_key, risk, sa.func.count().label("n"))
            .where(catalog_entries.c.status != ArtifactStatus.REMOVED, risk.is_not(None))
            .group_by(catalog_entries.c.source_key, risk)
        )
        wanted = sorted(set(keys)) if keys is not None else None
        slices = (
            [query]
            if wanted is None
            else [
                query.where(catalog_entries.c.source_key.in_(keys_slice))
                for keys_slice in key_slices(wanted)
            ]
        )
        counts: dict[str, dict[str, int]] = {key: {} for key in wanted or ()}
        with self.engine.connect() as conn:
            for statement in slices:
                for row in conn.execute(statement):
                    counts.setdefault(row.source_key, {})[row.risk] = row.n
        return {key: RiskCounts(**by_risk) for key, by_risk in counts.items()}

    def findings(
        self,
        *,
        source_key: str | None = None,
        min_severity: Severity | None = None,
        limit: int | None = None,
    ) -> list[SourceFinding]:
        """Findings of live entries, at least `min_severity`, highest severity first.

        Then by source, path, type, file and line; at most `limit`.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        risks = Severity.at_least(min_severity or Severity.LOW)
        query = sa.select(
            *catalog_entries.c["source_key", "artifact_type", "path", "name", "findings"]
        ).where(
            catalog_entries.c.status != ArtifactStatus.REMOVED,
            catalog_entries.c.risk.in_([r.value for r in risks]),
        )
        if source_key is not None:
            query = query.where(catalog_entries.c.source_key == source_key)
        found: list[SourceFinding] = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                entry = _FindingsRow.model_validate(row._asdict())
                found.extend(
                    SourceFinding(row.source_key, entry.artifact_type, row.path, row.name, f)
                    for f in entry.findings or ()
                    if f.severity in risks
                )
        found.sort(
            key=lambda f: (
                -f.finding.severity.rank,
                f.source_key,
                f.path,
                f.artifact_type.value,
                f.finding.file,
                f.finding.line,
                f.finding.rule,
            )
        )
        return found if limit is None else found[:limit]

    def _live_sources_column(
        self, column: sa.Column[Any], keys: Sequence[str], *where: sa.ColumnElement[bool]
    ) -> dict[str, Any]:
        """`column` of each source of `keys` that is not removed and meets `where`, by key."""
        found: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for keys_slice in key_slices(sorted(set(keys))):
                rows = conn.execute(
                    sa.select(sources.c.key, column).where(
                        sources.c.key.in_(keys_slice), sources.c.removed_at.is_(None), *where
                    )
                )
                found.update({key: value for key, value in rows})
        return found


class _FindingsRow(BaseModel):
    artifact_type: ArtifactType
    findings: list[Finding] | None
