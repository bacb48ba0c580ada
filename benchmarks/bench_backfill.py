"""Wall time, orchestration overhead and memory of `marketplace_index` runs, as a backfill makes them.

Part 1 materializes the 12 corpus repositories as `github: owner/repo` sources (one run: the
asset's backfill policy puts up to 25 partitions in a run), then again with every head unchanged,
and reports where the wall time went: inside ops (the sum of step durations from the event log)
or around them (orchestration: run creation, resource set-up, IO manager, event writes).

Part 2 serves the corpus bundles under N source keys (`bench/NNN-owner-repo`, plain git URLs, so
no GitHub API call) and works through them as the backfill daemon would: contiguous ranges of 25
partitions, one in-process run each, one after another. It reports sources per minute and the RSS
of this process after each run, for a first index and again with every source current.

The git server and the GitHub emulator run in a child process (`--serve`), so their CPU time does
not hold this process's GIL and their memory is not counted in its RSS; they still share the
machine's cores, as the clone workers do.

    /work/venv/bin/python benchmarks/bench_backfill.py [--sources 500] [--quick] [--parallel 4]

Target on a 2-core machine: at least 300 sources per minute for a first index, RSS flat.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
TARGET_PER_MINUTE = 300
PARTITIONS = "marketplace_sources"
SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 30.0
RSS_CHECKPOINTS = (1, 5, 10, 20)
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# -- the servers, in a child process ---------------------------------------------------------------


def serve(root: Path) -> int:
    """Child mode: git smart-HTTP server and GitHub emulator over `root` until stdin closes."""
    from skillmeat_pipeline.testing.git_server import GitHttpServer
    from skillmeat_pipeline.testing.github_emulator import GitHubEmulator

    # one bucket for every unauthenticated call, as GitHub has; 60 an hour would fail part 1
    with (
        GitHttpServer(root) as git,
        GitHubEmulator(
            root, git_base_url=git.base_url, anonymous_rate_limit=1_000_000
        ) as github,
    ):
        urls = {"git": git.base_url, "api": github.api_url, "raw": github.raw_url}
        print(json.dumps(urls), flush=True)
        sys.stdin.read()  # the parent closes our stdin to stop us
    return 0


@dataclass
class Servers:
    process: subprocess.Popen[str]
    git: str
    api: str
    raw: str

    def url_for(self, slug: str) -> str:
        return f"{self.git}/{slug}.git"


@contextlib.contextmanager
def servers(root: Path) -> Iterator[Servers]:
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a Ctrl-C reaches only us; we stop the child
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], SERVER_START_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the server process did not start within {SERVER_START_TIMEOUT_S} s")
        urls = json.loads(line)
        yield Servers(process, urls["git"], urls["api"], urls["raw"])
    finally:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


# -- memory ----------------------------------------------------------------------------------------


def rss_mb() -> float:
    """Resident set size of this process now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_KB / 1024


def peak_rss_mb() -> float:
    """Largest RSS this process has had (getrusage: KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_rss_mb() -> float:
    """RSS of this process's live children (the git worker pool, the server process)."""
    total = 0
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            total += int(fields[21])  # rss, pages
    return total * _PAGE_KB / 1024


# -- one run ---------------------------------------------------------------------------------------


@dataclass
class RunStats:
    run_id: str
    keys: int
    wall_s: float
    success: bool
    rss_mb: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)  # step key -> seconds
    before_start_s: float = 0.0  # materialize() called -> RUN_START
    in_run_s: float = 0.0  # RUN_START -> RUN_SUCCESS/FAILURE
    after_end_s: float = 0.0  # RUN_SUCCESS -> materialize() returned
    resource_init_s: float = 0.0
    events: int = 0
    materializations: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def step_sum_s(self) -> float:
        return sum(self.steps.values())

    @property
    def overhead_s(self) -> float:
        return self.wall_s - self.step_sum_s


class Bench:
    """A Dagster instance plus the asset and its resources; runs one range of partitions at a time."""

    def __init__(self, instance, parallel: int, io_manager: str, console_level: str) -> None:
        import dagster as dg

        from skillmeat_pipeline.definitions import defs
        from skillmeat_pipeline.defs.assets import marketplace_index
        from skillmeat_pipeline.defs.resources import FetchersResource

        self.dg = dg
        self.instance = instance
        self.asset = marketplace_index
        self.resources = dict(defs.resources)
        self.resources["fetchers"] = FetchersResource(max_parallel_sources=parallel)
        if io_manager == "mem":
            self.resources["io_manager"] = dg.mem_io_manager
        self.run_config = {"loggers": {"console": {"config": {"log_level": console_level}}}}

    def add_partitions(self, keys: Sequence[str]) -> float:
        started = time.perf_counter()
        known = set(self.instance.get_dynamic_partitions(PARTITIONS))
        self.instance.add_dynamic_partitions(PARTITIONS, [k for k in keys if k not in known])
        return time.perf_counter() - started

    def run(self, keys: Sequence[str], *, force: bool = False) -> RunStats:
        run_config = dict(self.run_config)
        if force:
            run_config["ops"] = {
                "marketplace_index": {"ops": {"resolve_heads": {"config": {"force": True}}}}
            }
        started_wall = time.time()
        started = time.perf_counter()
        result = self.dg.materialize(
            [self.asset],
            instance=self.instance,
            resources=self.resources,
            run_config=run_config,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
            raise_on_error=False,
        )
        wall = time.perf_counter() - started
        stats = RunStats(result.run_id, len(keys), wall, result.success, rss_mb=rss_mb())
        stats.before_start_s = started_wall  # replaced by `analyse`
        return stats

    def analyse(self, stats: RunStats) -> RunStats:
        """Step durations and the phases around them, from the run's event log."""
        from dagster import DagsterEventType as T

        started_wall = stats.before_start_s
        starts: dict[str, float] = {}
        run_start = run_end = None
        init_start = None
        for record in self.instance.all_logs(stats.run_id):
            stats.events += 1
            event = record.dagster_event
            if event is None:
                continue
            kind = event.event_type
            if kind is T.RUN_START:
                run_start = record.timestamp
            elif kind in (T.RUN_SUCCESS, T.RUN_FAILURE):
                run_end = record.timestamp
            elif kind is T.STEP_START:
                starts[event.step_key] = record.timestamp
            elif kind in (T.STEP_SUCCESS, T.STEP_FAILURE):
                stats.steps[event.step_key] = record.timestamp - starts[event.step_key]
            elif kind is T.ASSET_MATERIALIZATION:
                stats.materializations += 1
            elif kind is T.RESOURCE_INIT_STARTED and init_start is None:
                init_start = record.timestamp
            elif kind is T.RESOURCE_INIT_SUCCESS and init_start is not None:
                stats.resource_init_s += record.timestamp - init_start
                init_start = None
            if kind is T.STEP_FAILURE or kind is T.RUN_FAILURE:
                stats.failures.append(event.message or "")
        if run_start is not None and run_end is not None:
            stats.before_start_s = run_start - started_wall
            stats.in_run_s = run_end - run_start
            stats.after_end_s = stats.wall_s - stats.before_start_s - stats.in_run_s
        return stats


def write_sources(path: Path, sources: list[dict]) -> list[str]:
    import yaml

    path.write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))
    return [s.get("key") or s["github"] for s in sources]


def configure_env(work: Path, urls: Servers, sources_path: Path, catalog_name: str) -> None:
    os.environ.update(
        {
            "SKILLMEAT_SOURCES_FILE": str(sources_path),
            "SKILLMEAT_INDEX_URL": f"sqlite:///{work / catalog_name}",
            "SKILLMEAT_GITHUB_API_URL": urls.api,
            "SKILLMEAT_GITHUB_RAW_URL": urls.raw,
            "SKILLMEAT_GITHUB_GIT_URL": urls.git,
            "CLONE_TIMEOUT_SECONDS": "120",
            "MIN_CLONE_DISK_SPACE_MB": "1",
        }
    )
    os.environ.pop("GITHUB_TOKEN", None)


def fmt_run(label: str, stats: RunStats) -> str:
    steps = ", ".join(
        f"{key.removeprefix('marketplace_index.')} {seconds:.2f}"
        for key, seconds in stats.steps.items()
    )
    return (
        f"  {label}: wall {stats.wall_s:.2f} s = ops {stats.step_sum_s:.2f} s + orchestration "
        f"{stats.overhead_s:.2f} s (before RUN_START {stats.before_start_s:.2f}, between steps "
        f"{stats.in_run_s - stats.step_sum_s:.2f} incl. resource init "
        f"{stats.resource_init_s:.2f}, after RUN_SUCCESS {stats.after_end_s:.2f}); "
        f"{stats.materializations} materializations, {stats.events} events; "
        f"{'ok' if stats.success else 'FAILED'}\n    steps (s): {steps}"
    )


# -- part 1: the 12 corpus repositories as GitHub sources ---------------------------------------


def part_corpus(work: Path, urls: Servers, bundles: list[str], args: argparse.Namespace) -> None:
    import dagster as dg

    print(f"\n== Part 1: {len(bundles)} corpus repositories as `github:` sources, one run each ==")
    sources_path = work / "corpus-sources.yaml"
    configure_env(work, urls, sources_path, "corpus-catalog.sqlite")
    keys = write_sources(sources_path, [{"github": b.replace("+", "/")} for b in bundles])
    with dg.instance_for_test() as instance:
        bench = Bench(instance, args.parallel, args.io_manager, args.console_level)
        bench.add_partitions(keys)
        first = bench.analyse(bench.run(keys))
        print(fmt_run(f"first index ({len(keys)} sources)", first))
        current = bench.analyse(bench.run(keys))
        print(fmt_run("all current (no clone)", current))
        again = bench.analyse(bench.run(keys))
        print(fmt_run("all current, again  ", again))
        floor = trivial_runs(instance, args.console_level)
        print(
            f"  Dagster floor: a 1-op partitioned asset, {len(floor)} in-process runs: "
            f"median {statistics.median(floor):.3f} s per run"
        )
        if not (first.success and current.success):
            print("  FAILURES:", *(first.failures + current.failures), sep="\n    ")


def trivial_runs(instance, console_level: str, runs: int = 5) -> list[float]:
    import dagster as dg

    from skillmeat_pipeline.defs.partitions import marketplace_sources

    @dg.asset(partitions_def=marketplace_sources, backfill_policy=dg.BackfillPolicy.multi_run(25))
    def trivial(context):  # no annotations: they are strings here, which Dagster cannot resolve
        return dg.MaterializeResult()

    keys = instance.get_dynamic_partitions(PARTITIONS)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        dg.materialize(
            [trivial],
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": console_level}}}},
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
        times.append(time.perf_counter() - started)
    return times


# -- part 2: N plain-git sources as a backfill --------------------------------------------------


def part_backfill(work: Path, urls: Servers, bundles: list[str], args: argparse.Namespace) -> None:
    import dagster as dg

    n, per_run = args.sources, args.per_run
    print(
        f"\n== Part 2: backfill of {n} plain-git sources (the {len(bundles)} corpus repositories "
        f"round-robin), {per_run} partitions per run, runs in sequence, parallel "
        f"{args.parallel} ==")
    sources_path = work / "backfill-sources.yaml"
    configure_env(work, urls, sources_path, "backfill-catalog.sqlite")
    repos = [bundles[i % len(bundles)] for i in range(n)]
    sources = [
        {"key": f"bench/{i:03d}-{repo.replace('+', '-')}", "url": urls.url_for(repo.replace("+", "/"))}
        for i, repo in enumerate(repos)
    ]
    keys = write_sources(sources_path, sources)
    batches = [keys[i : i + per_run] for i in range(0, n, per_run)]
    with dg.instance_for_test() as instance:
        bench = Bench(instance, args.parallel, args.io_manager, args.console_level)
        added = bench.add_partitions(keys)
        print(f"  {n} dynamic partitions added in {added:.2f} s; {len(batches)} runs")
        print(f"  RSS before the first run: {rss_mb():.0f} MB (peak so far {peak_rss_mb():.0f} MB)")
        for label, force in (("first index", False), ("all current", False), ("forced re-index", True)):
            if label == "forced re-index" and not args.forced:
                continue
            passes = [bench.run(batch, force=force) for batch in _progress(batches, label)]
            runs = [bench.analyse(s) for s in passes]
            report_pass(label, runs, n)


def _progress(batches: list[list[str]], label: str) -> Iterator[list[str]]:
    for number, batch in enumerate(batches, 1):
        yield batch
        print(
            f"    {label} run {number}/{len(batches)} done, RSS {rss_mb():.0f} MB, "
            f"children {children_rss_mb():.0f} MB",
            file=sys.stderr,
            flush=True,
        )


def report_pass(label: str, runs: list[RunStats], n: int) -> None:
    wall = sum(r.wall_s for r in runs)
    ops = sum(r.step_sum_s for r in runs)
    failed = [r for r in runs if not r.success]
    materialized = sum(r.materializations for r in runs)
    rate = n / wall * 60
    print(
        f"  {label}: {n} sources in {wall:.1f} s = {rate:.0f} sources/min "
        f"({'meets' if rate >= TARGET_PER_MINUTE else 'MISSES'} the {TARGET_PER_MINUTE}/min "
        f"target); {materialized} materializations; {len(failed)} failed runs"
    )
    per_run = [r.wall_s for r in runs]
    overhead = [r.overhead_s for r in runs]
    print(
        f"    per run: wall median {statistics.median(per_run):.2f} s "
        f"(min {min(per_run):.2f}, max {max(per_run):.2f}); inside ops {ops:.1f} s total, "
        f"orchestration {wall - ops:.1f} s total = {statistics.median(overhead):.2f} s median per run"
    )
    step_totals: dict[str, float] = {}
    for r in runs:
        for key, seconds in r.steps.items():
            name = key.removeprefix("marketplace_index.")
            step_totals[name] = step_totals.get(name, 0.0) + seconds
    print("    ops, total over the pass (s): " + ", ".join(f"{k} {v:.1f}" for k, v in step_totals.items()))
    checkpoints = [c for c in RSS_CHECKPOINTS if c <= len(runs)] or [len(runs)]
    if len(runs) not in checkpoints:
        checkpoints.append(len(runs))
    print(
        "    RSS after run "
        + ", ".join(f"{c}: {runs[c - 1].rss_mb:.0f} MB" for c in checkpoints)
        + f"; peak RSS {peak_rss_mb():.0f} MB"
    )
    for r in failed[:3]:
        print("    FAILED run", r.run_id, *r.failures[:2], sep="\n      ")


# -- main ------------------------------------------------------------------------------------------


def layout(root: Path, corpus: Path, names: list[str]) -> float:
    from skillmeat_pipeline.testing.github_emulator import layout_bundle

    started = time.perf_counter()
    for name in names:
        layout_bundle(corpus / f"{name}.bundle", root)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sources", type=int, default=500, help="sources in the backfill (500)")
    parser.add_argument("--quick", action="store_true", help="a short run: 50 sources")
    parser.add_argument("--per-run", type=int, default=25, help="partitions per run (25)")
    parser.add_argument("--parallel", type=int, default=4, help="max_parallel_sources (4)")
    parser.add_argument("--io-manager", choices=("fs", "mem"), default="fs")
    parser.add_argument("--console-level", default="DEBUG", help="Dagster console log level")
    parser.add_argument("--forced", action="store_true", help="also a forced re-index pass")
    parser.add_argument("--skip-corpus", action="store_true", help="skip part 1")
    parser.add_argument("--skip-backfill", action="store_true", help="skip part 2")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.quick:
        args.sources = min(args.sources, 50)
    bundles = sorted(p.stem for p in args.corpus.glob("*.bundle"))
    if not bundles:
        parser.error(f"no *.bundle in {args.corpus}")
    warnings.filterwarnings("ignore")  # BetaWarning of backfill_policy etc.
    print(
        f"bench_backfill: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
        f"sources {args.sources}, per run {args.per_run}, max_parallel_sources {args.parallel}, "
        f"io manager {args.io_manager}, console log level {args.console_level}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        work = Path(tmp)
        root = work / "served"
        print(f"laid out {len(bundles)} bundles in {layout(root, args.corpus, bundles):.1f} s")
        started = time.perf_counter()
        with servers(root) as urls:
            import dagster  # noqa: F401  (imported here so its time is not in the first run)

            if not args.skip_corpus:
                part_corpus(work, urls, bundles, args)
            if not args.skip_backfill:
                part_backfill(work, urls, bundles, args)
        print(f"\ndone in {time.perf_counter() - started:.0f} s; peak RSS {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
