"""`skillmeat-pipeline index`: materialize `marketplace_index` for chosen sources through the local
Dagster instance, then follow the plugin sources the indexed marketplaces reveal (SPEC §2.1).

Runs are `index_source_batch` runs of the code location's own definitions, `SOURCES_PER_RUN`
sources each, as the sensors request them: every source gets its own materialization of its
partition (metadata, checks), visible in the Dagster UI of the same `DAGSTER_HOME`. Sources that
share a repository commit go in the same run, which fetches that commit once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import dagster as dg

from skillmeat_pipeline.defs.index.assets import SOURCES_PER_RUN
from skillmeat_pipeline.defs.index.checks import INDEX_ASSET_KEY
from skillmeat_pipeline.defs.index.jobs import BATCH_JOB_NAME, batch_run_config
from skillmeat_pipeline.defs.index.partitions import sync_sources
from skillmeat_pipeline.lib.catalog.source_set import SourceSet
from skillmeat_pipeline.lib.catalog.store import Catalog, SourceRecord
from skillmeat_pipeline.lib.core.models import SourceStatus
from skillmeat_pipeline.lib.core.sources import SourceConfig

# Plugin sources never list plugin sources (depth 1): a marketplace round then a plugin round
# reach closure; the bound only guards against a cycle this code does not foresee.
MAX_ROUNDS = 4
QUIET_RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

Progress = Callable[[int], AbstractContextManager[Any]]


class IndexUsageError(ValueError):
    """The command line names no source, or one that is not a source."""


@dataclass(frozen=True, slots=True)
class SourceResult:
    """How one source's indexing ended."""

    key: str
    status: str  # scanned | current | failed
    artifact_count: int | None
    detail: str  # the failure reason, or the commit indexed
    round: int


def repository_batches(
    sources: Sequence[SourceConfig], per_run: int = SOURCES_PER_RUN
) -> list[list[str]]:
    """Keys in runs of at most `per_run`, never splitting the sources of one repository over two
    runs (unless there are more of them than a run holds): a run clones each commit once, and an
    entry pinned to a repository's head shares the clone of an entry that follows it."""
    groups: dict[str, list[str]] = {}
    for source in sources:
        where = (source.github or source.url).lower().removesuffix(".git")
        groups.setdefault(where, []).append(source.key)
    batches: list[list[str]] = []
    current: list[str] = []
    for keys in groups.values():
        if current and len(current) + len(keys) > per_run:
            batches.append(current)
            current = []
        for start in range(0, len(keys), per_run):
            chunk = keys[start : start + per_run]
            if len(chunk) == per_run:
                batches.append(chunk)
            else:
                current += chunk
    if current:
        batches.append(current)
    return batches


def _stale(record: SourceRecord | None) -> bool:
    return (
        record is None
        or record.last_indexed_commit_sha is None
        or record.last_status in (None, SourceStatus.FAILED)
    )


def select_keys(
    wanted: SourceSet,
    catalog: Catalog,
    keys: Sequence[str],
    *,
    everything: bool,
    stale: bool,
) -> list[str]:
    """The partition keys the command line names: KEYs, `--all`, or the `--stale` ones."""
    known = wanted.partition_keys
    if not keys and not everything and not stale:
        raise IndexUsageError("name the sources to index: KEY ..., --all or --stale")
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise IndexUsageError(
            f"not a source: {', '.join(unknown[:10])} (see `skillmeat-pipeline sources list`)"
        )
    chosen = list(known) if everything else list(dict.fromkeys(keys))
    if stale:
        records = {r.key: r for r in catalog.list_sources()}
        pool = chosen if keys or everything else known
        chosen = [key for key in pool if _stale(records.get(key))]
    return chosen


def _run_batch(
    job: dg.JobDefinition, instance: dg.DagsterInstance, keys: list[str], force: bool
) -> dict[str, dict[str, Any]]:
    """One run over `keys`; the metadata of each partition it materialized."""
    run_config = batch_run_config(keys, force=force) | QUIET_RUN_CONFIG
    result = job.execute_in_process(
        run_config=run_config,
        instance=instance,
        raise_on_error=False,
        tags={"skillmeat/trigger": "cli-index"},
    )
    materialized: dict[str, dict[str, Any]] = {}
    for entry in instance.all_logs(
        result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ):
        event = entry.dagster_event
        if event is None:
            continue
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        if materialization.asset_key == INDEX_ASSET_KEY and materialization.partition:
            metadata = {k: v.value for k, v in materialization.metadata.items()}
            materialized[materialization.partition] = metadata
    return materialized


def run_index(
    instance: dg.DagsterInstance,
    catalog: Catalog,
    file_sources: list[SourceConfig],
    keys: Sequence[str],
    *,
    everything: bool = False,
    stale: bool = False,
    force: bool = False,
    follow: bool = True,
    progress: Progress,
    job: dg.JobDefinition | None = None,
) -> list[SourceResult]:
    """Index the chosen sources, then (with `follow`) the plugin sources they reveal, round by
    round until a sync adds none. Every source indexed once; results in the order indexed."""
    if job is None:
        from skillmeat_pipeline.definitions import defs

        job = defs.get_job_def(BATCH_JOB_NAME)
    wanted, _, _ = sync_sources(instance, catalog, file_sources)
    todo = select_keys(wanted, catalog, keys, everything=everything, stale=stale)
    results: list[SourceResult] = []
    done: set[str] = set()
    for number in range(1, MAX_ROUNDS + 1):
        if not todo:
            break
        by_key = wanted.by_key()
        batches = repository_batches([by_key[key] for key in todo])
        with progress(len(todo)) as bar:
            for batch in batches:
                materialized = _run_batch(job, instance, batch, force)
                results += _results(catalog, batch, materialized, number)
                bar.update(len(batch))
        done.update(todo)
        if not follow:
            break
        wanted, added, _ = sync_sources(instance, catalog, file_sources)
        # what the marketplaces just indexed reveal, not yet indexed by this command
        todo = [key for key in added if key not in done]
    return results


def _results(
    catalog: Catalog, keys: list[str], materialized: dict[str, dict[str, Any]], number: int
) -> Iterator[SourceResult]:
    for key in keys:
        record = catalog.get_source(key)
        meta = materialized.get(key)
        if meta is not None:
            yield SourceResult(
                key,
                str(meta.get("scan_status", "scanned")),
                int(meta.get("artifact_count") or 0),
                str(meta.get("commit_sha") or "")[:12],
                number,
            )
            continue
        reason = (record.last_error if record else None) or "the run failed before this source"
        count = record.artifact_count if record else None
        yield SourceResult(key, SourceStatus.FAILED.value, count, reason, number)
