"""`skillmeat-pipeline index`: materialize `marketplace_index` for chosen sources through the local
Dagster instance, then follow the plugin sources the indexed marketplaces reveal (SPEC §2.1).

Runs are what a backfill in the UI makes: `index_sources` (the asset job) over contiguous ranges
of at most `SOURCES_PER_RUN` partitions, so every source gets its own materialization (metadata,
checks) or shows as failed, in the Dagster UI of the same `DAGSTER_HOME`. Ranges are cut where the
repository changes: the sync appends a marketplace's plugin sources repository by repository, so
the sources of one repository share a run, which fetches each of its commits once. Sources that are
not contiguous in the partition order (a few `--stale` ones) make ranges of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import dagster as dg

from skillmeat_pipeline.defs.index.assets import SOURCES_PER_RUN
from skillmeat_pipeline.defs.index.checks import INDEX_ASSET_KEY
from skillmeat_pipeline.defs.index.partitions import marketplace_sources, sync_sources
from skillmeat_pipeline.lib.catalog.records import SourceRecord
from skillmeat_pipeline.lib.catalog.source_set import SourceSet
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.models import SourceStatus
from skillmeat_pipeline.lib.core.sources import SourceConfig

# Plugin sources never list plugin sources (depth 1): a marketplace round then a plugin round
# reach closure; the bound only guards against a cycle this code does not foresee.
MAX_ROUNDS = 4
INDEX_JOB_NAME = "index_sources"  # the asset job over partition ranges (defs/index/jobs.py)
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


def repository_of(source: SourceConfig) -> str:
    return source.github.lower() if source.github else source.url.rstrip("/").removesuffix(".git")


def partition_ranges(
    order: Sequence[str],
    selected: Collection[str],
    repository: Mapping[str, str],
    per_run: int = SOURCES_PER_RUN,
) -> list[list[str]]:
    """The selected keys as ranges of the partition `order`, at most `per_run` keys each, cut where
    the repository changes whenever a range must be cut (a repository with more sources than a run
    holds is the only one split)."""
    segments: list[list[str]] = [[]]
    for key in order:
        if key in selected:
            segments[-1].append(key)
        elif segments[-1]:
            segments.append([])
    ranges: list[list[str]] = []
    for segment in (s for s in segments if s):
        start = 0
        while len(segment) - start > per_run:
            end = start + per_run
            cut = next(
                (
                    c
                    for c in range(end, start, -1)
                    if repository[segment[c - 1]] != repository[segment[c]]
                ),
                end,
            )
            ranges.append(segment[start:cut])
            start = cut
        ranges.append(segment[start:])
    return ranges


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


def _run_range(
    job: dg.JobDefinition, instance: dg.DagsterInstance, keys: list[str], force: bool
) -> dict[str, dict[str, Any]]:
    """One run over the partition range `keys`; the metadata of each partition it materialized."""
    run_config = dict(QUIET_RUN_CONFIG)
    if force:
        run_config["ops"] = {
            "marketplace_index": {"ops": {"resolve_heads": {"config": {"force": True}}}}
        }
    result = job.execute_in_process(
        run_config=run_config,
        instance=instance,
        raise_on_error=False,
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
            "skillmeat/trigger": "cli-index",
        },
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

        job = defs.resolve_job_def(INDEX_JOB_NAME)
    wanted, _, _ = sync_sources(instance, catalog, file_sources)
    todo = select_keys(wanted, catalog, keys, everything=everything, stale=stale)
    results: list[SourceResult] = []
    done: set[str] = set()
    for number in range(1, MAX_ROUNDS + 1):
        if not todo:
            break
        repositories = {key: repository_of(source) for key, source in wanted.by_key().items()}
        # the partition order of the instance: what ranges are made of
        order = instance.get_dynamic_partitions(marketplace_sources.name)
        ranges = partition_ranges(order, set(todo), repositories)
        with progress(len(todo)) as bar:
            for keys_of_run in ranges:
                materialized = _run_range(job, instance, keys_of_run, force)
                results += _results(catalog, keys_of_run, materialized, number)
                bar.update(len(keys_of_run))
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
