"""Jobs: the asset job over partition ranges, and a batch job over any set of sources.

A Dagster run of an asset covers one partition or one contiguous *range* of partitions (in the
dynamic partitions' insertion order). Sources whose heads moved are scattered over that order, so
ranges would make one push storm into about one run per source. `index_source_batch` takes the
sources in run config instead (`ops: resolve_batch_heads: config: sources: [...]`) and runs the
very ops of `marketplace_index`: each indexed source still gets its own materialization of its
partition, with its own metadata and check results. Sensors that react to pushes use it; the
nightly re-index and UI backfills, which cover every partition, use ranges.
"""

from typing import Any

import dagster as dg

from skillmeat_pipeline.defs.index import assets
from skillmeat_pipeline.defs.index.assets import (
    OP_RETRY_POLICY,
    RESOLVE_OUTS,
    SOURCES_PER_RUN,
    index_steps,
    resolve_source_heads,
)
from skillmeat_pipeline.defs.index.partitions import marketplace_sources
from skillmeat_pipeline.defs.resources import (
    CatalogResource,
    FetchersResource,
    SourcesFileResource,
)

BATCH_JOB_NAME = "index_source_batch"
BATCH_OP_NAME = "resolve_batch_heads"

# Dagster objects of other modules under defs/ are used through their module (`assets.x`), never
# imported by name: the loader collects every module's module-level objects, so a name imported
# here would be collected twice (test_defs.py checks that each object is collected once).
index_sources_job = dg.define_asset_job(
    "index_sources",
    selection=[assets.marketplace_index],
    description="Index marketplace sources over a partition range (schedules, backfills).",
)


class BatchConfig(dg.Config):
    """Run config of `index_source_batch`: the sources (partition keys) to index."""

    sources: list[str]
    force: bool = False  # re-index sources whose head is the indexed commit


def batch_run_config(sources: list[str], *, force: bool = False) -> dict[str, Any]:
    """The run config of an `index_source_batch` run over `sources`."""
    config: dict[str, Any] = {"sources": list(sources)}
    if force:
        config["force"] = True
    return {"ops": {BATCH_OP_NAME: {"config": config}}}


@dg.op(name=BATCH_OP_NAME, out=RESOLVE_OUTS, retry_policy=OP_RETRY_POLICY)
def resolve_batch_heads(
    context: dg.OpExecutionContext,
    config: BatchConfig,
    sources_file: SourcesFileResource,
    catalog: CatalogResource,
    fetchers: FetchersResource,
):
    """`resolve_heads` of the asset for the sources named in run config (no partition range)."""
    partitions = set(context.instance.get_dynamic_partitions(marketplace_sources.name))
    keys = list(dict.fromkeys(config.sources))
    gone = [key for key in keys if key not in partitions]
    if gone:
        context.log.warning(
            f"{len(gone)} source(s) have no partition any more and are skipped: "
            f"{', '.join(gone[:10])}"
        )
    keys = [key for key in keys if key in partitions]
    yield from resolve_source_heads(context, keys, config.force, sources_file, catalog, fetchers)


@dg.job(
    name=BATCH_JOB_NAME,
    description="Index the sources named in run config (any set of partitions) in one run.",
    tags={"skillmeat/job": "batch"},
)
def index_source_batch_job():
    index_steps(*resolve_batch_heads())


# -- run requests ----------------------------------------------------------------------------------


def range_run_requests(
    keys: list[str],
    run_key_prefix: str,
    *,
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    per_run: int = SOURCES_PER_RUN,
) -> list[dg.RunRequest]:
    """`index_sources` runs over `keys`, `per_run` consecutive partitions each, as ranges.

    `keys` must be consecutive in the partition order (all partitions, or newly appended ones).
    """
    requests = []
    for start in range(0, len(keys), per_run):
        chunk = keys[start : start + per_run]
        requests.append(
            dg.RunRequest(
                run_key=f"{run_key_prefix}:{chunk[0]}..{chunk[-1]}",
                run_config=run_config or {},
                tags={
                    **(tags or {}),
                    "dagster/asset_partition_range_start": chunk[0],
                    "dagster/asset_partition_range_end": chunk[-1],
                },
            )
        )
    return requests


def batch_run_requests(
    keys: list[str],
    run_key_prefix: str,
    *,
    tags: dict[str, str] | None = None,
    per_run: int = SOURCES_PER_RUN,
) -> list[dg.RunRequest]:
    """`index_source_batch` runs over any `keys`, `per_run` sources each (in the given order)."""
    requests = []
    for number, start in enumerate(range(0, len(keys), per_run)):
        chunk = keys[start : start + per_run]
        requests.append(
            dg.RunRequest(
                run_key=f"{run_key_prefix}:{number}",
                run_config=batch_run_config(chunk),
                tags={**(tags or {}), "skillmeat/source_count": str(len(chunk))},
            )
        )
    return requests
