"""The queue of GitHub push deliveries between the webhook receiver and the push sensor."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from skillmeat_pipeline.lib.catalog.engine import CatalogEngine, utc_now
from skillmeat_pipeline.lib.catalog.records import PushEvent
from skillmeat_pipeline.lib.catalog.tables import push_events, storable


class PushEventQueue(CatalogEngine):
    """`Catalog`'s push events: store an accepted delivery once, list pending ones, mark handled."""

    def record_push_event(
        self,
        delivery_id: str,
        *,
        repository: str,
        ref: str | None,
        after_sha: str | None,
        source_keys: Sequence[str],
        received_at: datetime | None = None,
    ) -> bool:
        """Store an accepted push delivery; False when `delivery_id` was stored before (a replay).

        One statement: of two receivers storing the same delivery at once, exactly one gets True.
        """
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        values = storable(
            {
                "delivery_id": delivery_id,
                "repository": repository,
                "ref": ref,
                "after_sha": after_sha,
                "source_keys": sorted(set(source_keys)),
            }
        )
        statement = (
            dialect_insert(push_events)
            .values(**values, received_at=received_at or utc_now())
            .on_conflict_do_nothing(index_elements=["delivery_id"])
            .returning(push_events.c.id)
        )
        with self._writer.begin() as conn:
            inserted = conn.execute(statement).scalar_one_or_none()
        return inserted is not None

    def pending_push_events(
        self, *, limit: int = 1000, exclude_ids: Iterable[int] = ()
    ) -> list[PushEvent]:
        """Events not yet handled, oldest first, at most `limit`, leaving out `exclude_ids`."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = (
            sa.select(push_events)
            .where(push_events.c.handled_at.is_(None))
            .order_by(push_events.c.id)
            .limit(limit)
        )
        excluded = sorted(set(exclude_ids))
        if excluded:
            query = query.where(push_events.c.id.not_in(excluded))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [PushEvent.model_validate(row._asdict()) for row in rows]

    def mark_push_events_handled(
        self, ids: Iterable[int], *, handled_at: datetime | None = None
    ) -> int:
        """Set `handled_at` on these events (already handled ones keep theirs); how many changed."""
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        with self._writer.begin() as conn:
            result = conn.execute(
                sa.update(push_events)
                .where(push_events.c.id.in_(wanted), push_events.c.handled_at.is_(None))
                .values(handled_at=handled_at or utc_now())
            )
        return result.rowcount
