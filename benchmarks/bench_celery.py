"""SKILLMEAT_EXECUTOR=celery against the in-process executor: one backfill, three ways.

Each pass is a fresh production deployment (deploy/dagster.yaml on a scratch PostgreSQL database,
a code server and the daemon, `skillmeat_pipeline.testing.deployment`) and one asset backfill of
`marketplace_index` over N sources through the daemon, as in `bench_daemon_backfill.py` (the
corpus bundles served under N keys over git smart HTTP): first with the in-process executor, then
with Celery and 1 worker, then with 2 workers (`dagster-celery worker start ... -q
dagster,clone,api`, one process each, concurrency 1, on this machine: the workers share its 2
cores). RabbitMQ: the machine's, a virtual host per pass. The sources file takes one source per
repository, so the Nth source is a symlink of its own to a corpus bundle's repository.

Reported per pass: sources per minute (submission -> last run ended), and the per-source cost of
Celery against in-process (the ratio of their wall times); for Celery, the step outputs that went
through the shared step storage (SKILLMEAT_STEP_STORAGE_DIR): how many, and their sizes.

    .venv/bin/python benchmarks/bench_celery.py              # 100 sources, a few minutes
    ... [--sources N] [--parallel 4] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench_backfill import (
    CORPUS_DIR,
    layout,
    round_robin_sources,
    scratch_postgres,
    servers,
    write_sources,
)
from bench_daemon_backfill import wait_for_backfill


def step_outputs(storage: Path) -> str:
    """How many step outputs the shared storage holds, the largest and their total, per step."""
    by_step: dict[str, list[int]] = {}
    for path in storage.rglob("*"):
        if path.is_file():
            by_step.setdefault(path.parent.name.split(".")[-1], []).append(path.stat().st_size)
    return "; ".join(
        f"{step} {len(sizes)} files, largest {max(sizes) / 1024:.1f} KiB, "
        f"total {sum(sizes) / 1024:.1f} KiB"
        for step, sizes in sorted(by_step.items())
    )


def one_pass(label: str, args, urls, sources: list[dict], work: Path, workers: int) -> float:
    """A deployment, the backfill and its report; returns its wall time (s)."""
    import dagster as dg
    import sqlalchemy as sa

    from skillmeat_pipeline.testing.dagster_private import submit_asset_backfill
    from skillmeat_pipeline.testing.deployment import (
        celery_settings,
        celery_workers,
        local_deployment,
        rabbitmq_vhost,
    )

    work.mkdir(parents=True)
    sources_path = work / "sources.yaml"
    write_sources(sources_path, [])
    with scratch_postgres(args.postgres_url) as db_url, contextlib.ExitStack() as stack:
        settings = {
            "SKILLMEAT_INDEX_URL": db_url,
            "SKILLMEAT_SOURCES_FILE": str(sources_path),
            "SKILLMEAT_GITHUB_API_URL": urls.api,
            "SKILLMEAT_GITHUB_RAW_URL": urls.raw,
            "SKILLMEAT_GITHUB_GIT_URL": urls.git,
            "SKILLMEAT_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
            "CLONE_TIMEOUT_SECONDS": "120",
            "MIN_CLONE_DISK_SPACE_MB": "1",
        }
        if workers:
            broker = stack.enter_context(rabbitmq_vhost())
            settings |= celery_settings(broker, work / "step-storage")
        deployment = stack.enter_context(local_deployment(sa.make_url(db_url), work, settings))
        instance = deployment.instance()
        stack.callback(instance.dispose)
        # new sources would be indexed by the sensors' runs: only the backfill runs here
        deployment.stop_sensor("sources_sync_sensor")
        deployment.stop_sensor("source_heads_sensor")
        keys = write_sources(sources_path, sources)
        instance.add_dynamic_partitions("marketplace_sources", keys)
        if workers:
            names = [f"bench-{i}" for i in range(workers)]
            stack.enter_context(celery_workers(names, ("dagster", "clone", "api"), work))
        fetchers = {"config": {"max_parallel_sources": args.parallel}}
        run_config = {"resources": {"fetchers": fetchers}}
        submitted = time.time()
        backfill_id = submit_asset_backfill(
            instance, deployment.workspace, "marketplace_index", keys, run_config
        )
        result = wait_for_backfill(instance, backfill_id, submitted)
        ends = [r.end_time for r in result.runs if r.end_time]
        wall = (max(ends) if ends else result.ended) - submitted
        statuses = sorted({r.dagster_run.status.value for r in result.runs})
        print(
            f"  {label}: {len(keys)} sources in {wall:.1f} s = {len(keys) / wall * 60:.0f} "
            f"sources/min; {len(result.runs)} runs ({', '.join(statuses)}); backfill "
            f"{result.status}"
        )
        for record in result.runs:
            run = record.dagster_run
            print(
                f"    run {run.run_id[:8]}: {run.tags.get('skillmeat/sources_indexed')} sources "
                f"indexed, {run.tags.get('skillmeat/sources_failed')} failed"
            )
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
                error = entry.dagster_event.event_specific_data.error
                print(f"      {entry.step_key}: {error.message[:300] if error else entry.message}")
        if workers:
            print(f"    step outputs: {step_outputs(work / 'step-storage')}")
        return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sources", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=4, help="max_parallel_sources (4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SKILLMEAT_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    args = parser.parse_args()
    bundles = sorted(p.stem for p in args.corpus.glob("*.bundle"))
    if not bundles:
        parser.error(f"no *.bundle in {args.corpus}")
    warnings.filterwarnings("ignore")
    os.environ.pop("GITHUB_TOKEN", None)

    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        work = Path(tmp)
        layout(work / "served", args.corpus, bundles)
        with servers(work / "served") as urls:
            sources, _ = round_robin_sources(work / "served", urls, bundles, args.sources)
            print(f"== asset backfill of {args.sources} sources through the daemon ==")
            base = one_pass("in-process", args, urls, sources, work / "in-process", 0)
            for n in args.workers:
                wall = one_pass(
                    f"celery, {n} worker(s)", args, urls, sources, work / f"celery-{n}", n
                )
                print(
                    f"    per source: {wall / args.sources:.2f} s against "
                    f"{base / args.sources:.2f} s in-process = {wall / base:.2f}x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
