"""A real backfill: the production instance, its daemon and its code server index N sources.

The shipped `deploy/dagster.yaml` (PostgreSQL storage, the run queue and its
`max_concurrent_runs`, the pools) runs on a scratch database with a gRPC code server and
`dagster-daemon run` (`skillmeat_pipeline.testing.deployment`); the catalog is in the same
database. The corpus bundles are served under N source keys as in `bench_backfill.py` part 2
(plain git URLs of the 12 repositories round-robin). The benchmark submits one asset backfill of
`marketplace_index` over every partition, as the UI's "Materialize" on all partitions does
(`PartitionBackfill.from_asset_partitions`, what the GraphQL mutation calls; no public API, so
it lives in `skillmeat_pipeline/testing/dagster_private.py`), and waits for it to end. The daemon
splits it into runs of 25 (the asset's backfill policy) and queues them; the queue starts up to
`max_concurrent_runs` at a time, each in a new process (DefaultRunLauncher). Then the same
backfill again, with every head unchanged.

Reported per backfill: sources per minute from submission to the end of the last run (and to
the daemon marking the backfill done), the runs' durations and the gaps in which fewer runs than
allowed were in progress, CPU seconds per process kind, and memory sampled every 0.5 s: the
largest run process and everything the code server started.

    .venv/bin/python benchmarks/bench_daemon_backfill.py            # 500 sources, ~5 min
    ... [--sources N] [--max-concurrent-runs 4] [--parallel 4] [--dequeue-interval S]

Target on a 2-core machine (issue 4): at least 300 sources per minute for a first index.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from bench_backfill import (
    _PAGE_KB,
    CORPUS_DIR,
    TARGET_PER_MINUTE,
    _cpu_s,
    _descendants,
    _proc_stats,
    background_load,
    layout,
    named_cpu_s,
    round_robin_sources,
    scratch_postgres,
    servers,
    write_sources,
)

SAMPLE_EVERY_S = 0.5
BACKFILL_TIMEOUT_S = 1800.0


@dataclass
class Samples:
    """What the sampler saw while a backfill ran."""

    peak_run_rss_mb: float = 0.0  # the largest single run process (with its clone workers)
    peak_total_rss_mb: float = 0.0  # code server, run processes and their clone workers
    peak_runs: int = 0  # run processes alive at once
    seen_runs: set[int] = field(default_factory=set)


def _is_run_process(pid: int) -> bool:
    """A run worker: the gRPC server starts each run as a `multiprocessing` spawn child."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def sample(code_server_pid: int, samples: Samples, stop: threading.Event) -> None:
    """Every SAMPLE_EVERY_S until `stop`: RSS of the code server's tree and of each run."""
    while not stop.wait(SAMPLE_EVERY_S):
        stats = _proc_stats()
        tree = [code_server_pid, *_descendants(stats, code_server_pid)]
        rss = {pid: int(stats[pid][21]) * _PAGE_KB / 1024 for pid in tree if pid in stats}
        runs = [pid for pid in tree if pid in stats and _is_run_process(pid)]
        samples.seen_runs.update(runs)
        samples.peak_runs = max(samples.peak_runs, len(runs))
        samples.peak_total_rss_mb = max(samples.peak_total_rss_mb, sum(rss.values()))
        for run in runs:
            own = rss.get(run, 0.0) + sum(rss.get(c, 0.0) for c in _descendants(stats, run))
            samples.peak_run_rss_mb = max(samples.peak_run_rss_mb, own)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process, its ended children, and its live descendants."""
    stats = _proc_stats()
    if pid not in stats:
        return 0.0
    return _cpu_s(stats[pid]) + sum(
        _cpu_s(stats[child]) for child in _descendants(stats, pid) if child in stats
    )


@dataclass
class BackfillResult:
    submitted: float
    ended: float  # the daemon marked the backfill done
    status: str
    runs: list  # RunRecord


def wait_for_backfill(instance, backfill_id: str, submitted: float) -> BackfillResult:
    import dagster as dg

    from skillmeat_pipeline.testing.dagster_private import backfill_status

    deadline = submitted + BACKFILL_TIMEOUT_S
    last_report = 0.0
    while True:
        status, final = backfill_status(instance, backfill_id)
        runs = instance.get_run_records(
            dg.RunsFilter(tags={"dagster/backfill": backfill_id}), ascending=True
        )
        now = time.time()
        if final:
            return BackfillResult(submitted, now, status, runs)
        if now > deadline:
            raise RuntimeError(f"backfill {backfill_id} did not end in {BACKFILL_TIMEOUT_S:.0f} s")
        if now - last_report > 10:
            done = sum(1 for r in runs if r.dagster_run.is_finished)
            print(
                f"    {now - submitted:5.0f} s: {status}, {len(runs)} runs created, {done} ended",
                file=sys.stderr,
                flush=True,
            )
            last_report = now
        time.sleep(1.0)  # a benchmark's poll of the daemon's progress, not a test


def report(label: str, n: int, result: BackfillResult, samples: Samples, cpu: str) -> None:
    import dagster as dg

    runs = result.runs
    starts = [r.start_time for r in runs if r.start_time]
    ends = [r.end_time for r in runs if r.end_time]
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r.dagster_run.status.value] = statuses.get(r.dagster_run.status.value, 0) + 1
    last_end = max(ends) if ends else result.ended
    work_s = last_end - result.submitted
    rate = n / work_s * 60
    verdict = "meets" if rate >= TARGET_PER_MINUTE else "MISSES"
    steady = n / (last_end - min(starts)) * 60 if starts else 0.0
    print(
        f"  {label}: {n} sources, submission -> last run ended {work_s:.1f} s = {rate:.0f} "
        f"sources/min ({verdict} the {TARGET_PER_MINUTE}/min target); first run start -> last "
        f"run end: {steady:.0f} sources/min; backfill marked {result.status} after "
        f"{result.ended - result.submitted:.1f} s"
    )
    durations = sorted(r.end_time - r.start_time for r in runs if r.start_time and r.end_time)
    if durations:
        print(
            f"    {len(runs)} runs ({', '.join(f'{v} {k}' for k, v in statuses.items())}); "
            f"run wall (process start -> end) median {durations[len(durations) // 2]:.1f} s, "
            f"min {durations[0]:.1f}, max {durations[-1]:.1f}; first run started "
            f"{min(starts) - result.submitted:.1f} s after submission"
        )
    ok = all(r.dagster_run.status is dg.DagsterRunStatus.SUCCESS for r in runs)
    if not ok:
        for r in runs:
            if r.dagster_run.status is not dg.DagsterRunStatus.SUCCESS:
                print(f"    run {r.dagster_run.run_id}: {r.dagster_run.status.value}")
    print(f"    {cpu}")
    print(
        f"    memory: largest run process (with its clone workers) {samples.peak_run_rss_mb:.0f} "
        f"MB; code server + every run at once, peak {samples.peak_total_rss_mb:.0f} MB; "
        f"at most {samples.peak_runs} runs alive at once, {len(samples.seen_runs)} seen"
    )


def cpu_by_kind(deployment, server_pid: int) -> dict[str, float]:
    """CPU seconds so far of each kind of process taking part."""
    return {
        "code server + runs": tree_cpu_s(deployment.code_server.pid),
        "daemon": tree_cpu_s(deployment.daemon.pid),
        "git server + emulator": tree_cpu_s(server_pid),
        "postgres": named_cpu_s("postgres"),
        "this process": time.process_time(),
    }


def run_pass(label, deployment, instance, keys, run_config, server_pid) -> None:
    # the UI's backfill submission has no public API: see testing/dagster_private.py
    from skillmeat_pipeline.testing.dagster_private import submit_asset_backfill

    samples, stop = Samples(), threading.Event()
    sampler = threading.Thread(target=sample, args=(deployment.code_server.pid, samples, stop))
    cpu_before = cpu_by_kind(deployment, server_pid)
    sampler.start()
    try:
        submitted = time.time()
        backfill_id = submit_asset_backfill(
            instance, deployment.workspace, "marketplace_index", keys, run_config
        )
        result = wait_for_backfill(instance, backfill_id, submitted)
    finally:
        stop.set()
        sampler.join()
    cpu_after = cpu_by_kind(deployment, server_pid)
    cpu = "CPU s: " + ", ".join(f"{k} {cpu_after[k] - cpu_before[k]:.1f}" for k in cpu_before)
    report(label, len(keys), result, samples, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument(
        "--max-concurrent-runs",
        type=int,
        help="override deploy/dagster.yaml's run limit (shipped: 4)",
    )
    parser.add_argument(
        "--dequeue-interval", type=float, help="override the run queue's dequeue interval (s)"
    )
    parser.add_argument("--parallel", type=int, default=4, help="max_parallel_sources (4)")
    parser.add_argument(
        "--first-index-only", action="store_true", help="skip the all-current backfill"
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SKILLMEAT_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin URL where the scratch database is created and dropped",
    )
    args = parser.parse_args()
    bundles = sorted(p.stem for p in args.corpus.glob("*.bundle"))
    if not bundles:
        parser.error(f"no *.bundle in {args.corpus}")
    warnings.filterwarnings("ignore")

    import dagster as dg  # noqa: F401  (here, so a missing install fails before any set-up)
    import sqlalchemy as sa

    from skillmeat_pipeline.testing.deployment import local_deployment

    def edit_instance(config: dict) -> None:
        if args.max_concurrent_runs is not None:
            config["concurrency"]["runs"]["max_concurrent_runs"] = args.max_concurrent_runs
        if args.dequeue_interval is not None:
            config["run_coordinator"]["config"]["dequeue_interval_seconds"] = args.dequeue_interval

    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        work = Path(tmp)
        seconds = layout(work / "served", args.corpus, bundles)
        print(f"laid out {len(bundles)} bundles in {seconds:.1f} s")
        load = background_load()
        print(
            f"machine busy before start: {load:.0%} of {os.cpu_count()} cores "
            f"(load average {os.getloadavg()[0]:.1f}){'  -- NOISY' if load > 0.1 else ''}"
        )
        with servers(work / "served") as urls, scratch_postgres(args.postgres_url) as db_url:
            sources, _ = round_robin_sources(work / "served", urls, bundles, args.sources)
            keys = [source["key"] for source in sources]
            # empty until the sensors are stopped (below): only the backfill indexes them
            (work / "sources.yaml").write_text("sources: []\n")
            settings = {
                "SKILLMEAT_INDEX_URL": db_url,
                "SKILLMEAT_SOURCES_FILE": str(work / "sources.yaml"),
                "SKILLMEAT_GITHUB_API_URL": urls.api,
                "SKILLMEAT_GITHUB_RAW_URL": urls.raw,
                "SKILLMEAT_GITHUB_GIT_URL": urls.git,
                # the servers listen on loopback, which sources may not reach unless allowed
                "SKILLMEAT_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
                "CLONE_TIMEOUT_SECONDS": "120",
                "MIN_CLONE_DISK_SPACE_MB": "1",
            }
            os.environ.pop("GITHUB_TOKEN", None)
            started = time.perf_counter()
            with local_deployment(
                sa.make_url(db_url), work / "deploy", settings, edit_instance=edit_instance
            ) as deployment:
                limit = args.max_concurrent_runs or "as shipped"
                print(
                    f"deployment up in {time.perf_counter() - started:.1f} s (code server, "
                    f"daemon; max_concurrent_runs {limit}, max_parallel_sources {args.parallel})"
                )
                instance = deployment.instance()
                try:
                    # new sources would be indexed by the sensors' runs: only the backfill runs
                    deployment.stop_sensor("sources_sync_sensor")
                    deployment.stop_sensor("source_heads_sensor")
                    write_sources(work / "sources.yaml", sources)
                    instance.add_dynamic_partitions("marketplace_sources", keys)
                    run_config = {
                        "resources": {
                            "fetchers": {"config": {"max_parallel_sources": args.parallel}}
                        }
                    }
                    print(f"\n== asset backfill of {len(keys)} sources through the daemon ==")
                    passes = ["first index"] + ([] if args.first_index_only else ["all current"])
                    for label in passes:
                        run_pass(label, deployment, instance, keys, run_config, urls.process.pid)
                except BaseException:
                    print(deployment.log_tails(), file=sys.stderr)
                    raise
                finally:
                    instance.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
