"""Catalog-wide totals (the numbers a user wants after a backfill, not those of the last
partition): live artifacts by kind, by quality band and by risk, sources by status, duplicates."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.catalog.tables import catalog_entries, sources
from skillmeat_pipeline.lib.core.models import ArtifactStatus, ArtifactType, SourceStatus

# Quality bands (README "Quality rubric"): lower bound of each, best first.
QUALITY_BANDS = (("high", 80), ("medium", 50), ("low", 0))
UNSCORED = "unscored"
NEVER_INDEXED = "never_indexed"
NO_RISK = "none"


@dataclass(frozen=True, slots=True)
class CatalogSummary:
    artifacts: int
    by_kind: dict[str, int]
    by_quality_band: dict[str, int]
    by_risk: dict[str, int] | None  # None: the catalog has no risk column yet
    sources_by_status: dict[str, int]
    duplicate_rows: int
    sources: int = field(default=0)


def quality_band(quality: int | None) -> str:
    if quality is None:
        return UNSCORED
    return next(name for name, lower in QUALITY_BANDS if quality >= lower)


def summarize_catalog(catalog: Catalog) -> CatalogSummary:
    live = sa.and_(
        catalog_entries.c.status != ArtifactStatus.REMOVED, sources.c.removed_at.is_(None)
    )
    joined = catalog_entries.join(sources, sources.c.key == catalog_entries.c.source_key)
    by_kind = dict.fromkeys((kind.value for kind in ArtifactType), 0)
    bands = dict.fromkeys([*(name for name, _ in QUALITY_BANDS), UNSCORED], 0)
    with catalog.engine.connect() as conn:
        for kind, count in conn.execute(
            sa.select(catalog_entries.c.artifact_type, sa.func.count())
            .select_from(joined)
            .where(live)
            .group_by(catalog_entries.c.artifact_type)
        ):
            by_kind[kind] = count
        for quality, count in conn.execute(
            sa.select(catalog_entries.c.quality, sa.func.count())
            .select_from(joined)
            .where(live)
            .group_by(catalog_entries.c.quality)
        ):
            bands[quality_band(quality)] += count
        by_risk: dict[str, int] | None = None
        # TODO(integrator): issue 14 adds `risk` (migration 0007); read it directly once merged.
        risk = catalog_entries.c.get("risk")
        if risk is not None:
            by_risk = {"high": 0, "medium": 0, "low": 0, NO_RISK: 0}
            for value, count in conn.execute(
                sa.select(risk, sa.func.count()).select_from(joined).where(live).group_by(risk)
            ):
                by_risk[value or NO_RISK] = count
        statuses = dict.fromkeys([*(s.value for s in SourceStatus), NEVER_INDEXED], 0)
        for status, count in conn.execute(
            sa.select(sources.c.last_status, sa.func.count()).group_by(sources.c.last_status)
        ):
            statuses[status or NEVER_INDEXED] += count
        duplicate_rows = conn.execute(
            sa.select(sa.func.count())
            .select_from(joined)
            .where(live, catalog_entries.c.duplicate_of.is_not(None))
        ).scalar_one()
    return CatalogSummary(
        artifacts=sum(by_kind.values()),
        by_kind=by_kind,
        by_quality_band=bands,
        by_risk=by_risk,
        sources_by_status=statuses,
        duplicate_rows=duplicate_rows,
        sources=sum(statuses.values()),
    )
