"""Step 5, the catalog write (`write`): a source's outcome stored in one transaction, a failed write
recorded as a failure, a write a newer scan overtook ended `Superseded`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from skillmeat_pipeline.lib.catalog.errors import (
    ScanSupersededError,
    StaleHeadError,
    UnknownSourceError,
)
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.scan.cost import Timeline
from skillmeat_pipeline.lib.scan.events import log_event
from skillmeat_pipeline.lib.scan.outcomes import Current, Failed, Scanned, SourceOutcome, Superseded

logger = logging.getLogger(__name__)


def _ms_since(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


@dataclass(frozen=True, slots=True)
class Written:
    """A source's end after its catalog transaction: `outcome` is `Failed` if the write failed."""

    outcome: SourceOutcome
    rows_affected: int
    write_ms: int


def write(catalog: Catalog, outcome: SourceOutcome) -> Written:
    """Store a scanned source in one transaction, or record why it is current or failed.

    A transaction that fails is rolled back and the source recorded as failed: one source's bad
    rows never lose another's work. A scan or head check that a newer scan overtook (the source's
    scan version moved since the plan read it) is not written and ends `Superseded`.
    """
    started = time.monotonic()
    timeline = Timeline(outcome.cost)
    rows = 0
    with timeline.phase("write") as phase:
        try:
            rows = _store(catalog, outcome)
        except (ScanSupersededError, StaleHeadError) as exc:
            assert isinstance(outcome, Scanned | Current), "only scans and head checks are checked"
            phase.note("superseded", reason=str(exc))
            log_event(
                logger,
                logging.WARNING,
                f"source {outcome.source_key}: this run's result (commit "
                f"{(outcome.commit_sha or '')[:12]}) was not written: {exc}. The partition ends "
                "superseded and does not fail",
                source=outcome.source_key,
                event="scan_superseded",
                commit_sha=outcome.commit_sha,
            )
            outcome = Superseded(
                source_key=outcome.source_key,
                reason=str(exc),
                target=outcome.target,
                previous_target=outcome.previous_target,
                fallback_reason=outcome.fallback_reason,
                cost=outcome.cost,
            )
        except Exception as exc:
            phase.fail(exc)
            reason = f"writing rows failed: {exc}"
            log_event(
                logger,
                logging.ERROR,
                f"source {outcome.source_key}: writing its rows failed: {exc}; "
                "the transaction was rolled back and its last good rows stay",
                source=outcome.source_key,
                event="write_failed",
            )
            outcome = Failed(
                source_key=outcome.source_key,
                reason=reason,
                strategy=outcome.strategy,
                previous_target=outcome.previous_target,
                fallback_reason=outcome.fallback_reason,
                cost=outcome.cost,
                base_version=outcome.base_version,
            )
            _store(catalog, outcome)
        phase.set(rows_affected=rows, artifact_count=outcome.artifact_count)
    return Written(replace(outcome, cost=timeline.cost()), rows, _ms_since(started))


def _store(catalog: Catalog, outcome: SourceOutcome) -> int:
    if isinstance(outcome, Scanned):
        return catalog.write_scan(
            outcome.source_key,
            outcome.entries,
            clone_target=outcome.target,
            api_calls=outcome.cost.api_calls,
            marketplace=outcome.marketplace,
            indexed_at=datetime.now(UTC),
            problems=outcome.problems,
            expected_version=outcome.base_version,
        ).rows_affected
    if isinstance(outcome, Current):
        catalog.record_current(
            outcome.source_key,
            outcome.commit_sha,
            outcome.cost.api_calls,
            expected_version=outcome.base_version,
        )
        return 0
    # not a configured source (a partition added in the UI, a removed source): it has no active
    # row to note the failure on; its partition and the run log say why it failed
    recorded = True
    with contextlib.suppress(UnknownSourceError):
        recorded = catalog.record_failure(
            outcome.source_key,
            outcome.reason,
            api_calls=outcome.cost.api_calls,
            expected_version=outcome.base_version,
        )
    if not recorded:
        log_event(
            logger,
            logging.INFO,
            f"source {outcome.source_key}: its failure is not recorded in the catalog, where "
            "a newer scan was written since this run began; that scan's status stays",
            source=outcome.source_key,
            event="failure_superseded",
        )
    return 0
