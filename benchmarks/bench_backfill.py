"""Wall time, orchestration overhead and memory of `marketplace_index` runs, as a backfill runs.

Part 1 materializes the 12 corpus repositories as `github: owner/repo` sources in one run (the
asset's backfill policy puts up to 50 partitions in a run), then three times more with every head
unchanged (no clone, no REST call), and splits each run's wall time into time inside ops (the sum
of STEP_START -> STEP_SUCCESS/FAILURE from the run's event log) and orchestration (the rest of the
wall time of `dg.materialize()`: run creation with its planned events, resource set-up, IO
manager, step events). Logging the per-partition events happens inside the last op; it is shown
separately as that op's time minus its catalog transactions.

Part 2 serves the corpus bundles under N source keys (`bench/NNN-owner-repo`, plain git URLs of
the 12 repositories round-robin, so no GitHub API call) and works through them as the backfill
daemon would: contiguous ranges of `--per-run` partitions (the asset's 50), one run each with
the range tags, one after another in this process (`--concurrent-runs K`: K worker processes
on the same instance, as `max_concurrent_runs` allows). It reports sources per minute, the CPU
time of each process involved, the RSS after each run, for a first index and again with every
source current.

The git server and the GitHub emulator run in a child process (`--serve`): their CPU time does not
hold this process's GIL and their memory is not in its RSS, but they share the machine's cores
with the pipeline (GitHub's servers would not). Everything runs on loopback; temporary
directories, scratch PostgreSQL databases and child processes are removed on exit.

    /work/venv/bin/python benchmarks/bench_backfill.py            # 12 + 500 sources, ~3.5 min
    /work/venv/bin/python benchmarks/bench_backfill.py --quick    # 12 + 50 sources, ~30 s
    ... [--sources N] [--parallel 4] [--concurrent-runs 1] [--per-run 50]
        [--catalog sqlite|postgres] [--dagster-storage sqlite|postgres] [--profile DIR]

Dagster's DEBUG console log goes to stderr (`2>/dev/null` to hide it, with the per-run progress).
Target on a 2-core machine: at least 300 sources per minute for a first index, RSS flat.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
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
RUN_TIMEOUT_S = 900.0
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# -- the servers, in a child process ---------------------------------------------------------------


def serve(root: Path) -> int:
    """Child mode: git smart-HTTP server and GitHub emulator over `root` until stdin closes."""
    from skillmeat_pipeline.testing.git_server import GitHttpServer
    from skillmeat_pipeline.testing.github_emulator import GitHubEmulator

    # one bucket for every unauthenticated call, as GitHub has; 60 an hour would fail part 1
    with (
        GitHttpServer(root) as git,
        GitHubEmulator(root, git_base_url=git.base_url, anonymous_rate_limit=1_000_000) as github,
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
            raise RuntimeError(
                f"the server process did not start within {SERVER_START_TIMEOUT_S} s"
            )
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


def _proc_stats() -> dict[int, list[str]]:
    """The /proc/<pid>/stat fields after the command name, of every process."""
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            stats[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
    return stats


def _descendants(stats: dict[int, list[str]], root: int, skip: int | None = None) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child != skip:
                found.append(child)
                stack.append(child)
    return found


def descendants_rss_mb(skip: int | None = None) -> float:
    """RSS of every live process below this one (run workers, clone workers), `skip`'s tree not."""
    stats = _proc_stats()
    pages = sum(int(stats[pid][21]) for pid in _descendants(stats, os.getpid(), skip))
    return pages * _PAGE_KB / 1024


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def named_cpu_s(name: str) -> float:
    """CPU seconds of every process called `name` and its ended children (a database server)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == name:
            total += _cpu_s(text.rsplit(")", 1)[1].split())
    return total


def _cpu_s(fields: list[str]) -> float:
    """utime + stime + cutime + cstime: the process and its children that ended, in seconds."""
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far: the machine, this process, the servers, every other descendant."""

    machine_busy: float
    machine_total: float
    self_s: float
    server_s: float
    others_s: float  # clone workers (and run workers), live or ended
    postgres_s: float  # the local PostgreSQL server, when the benchmark uses it

    @classmethod
    def take(cls, server_pid: int) -> CpuSample:
        busy, total = cpu_jiffies()
        tick = os.sysconf("SC_CLK_TCK")
        stats = _proc_stats()
        me = resource.getrusage(resource.RUSAGE_SELF)
        ended = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers closed on the way
        server = _cpu_s(stats[server_pid]) if server_pid in stats else 0.0
        live = sum(_cpu_s(stats[pid]) for pid in _descendants(stats, os.getpid(), skip=server_pid))
        return cls(
            busy / tick,
            total / tick,
            me.ru_utime + me.ru_stime,
            server,
            live + ended.ru_utime + ended.ru_stime,
            named_cpu_s("postgres"),
        )

    def since(self, start: CpuSample, others: str = "clone workers") -> str:
        machine = (self.machine_busy - start.machine_busy) / max(
            self.machine_total - start.machine_total, 1e-9
        )
        return (
            f"CPU s: this process {self.self_s - start.self_s:.1f}, {others} "
            f"{self.others_s - start.others_s:.1f}, git server + emulator "
            f"{self.server_s - start.server_s:.1f}, postgres "
            f"{self.postgres_s - start.postgres_s:.1f}; machine {machine:.0%} busy "
            f"(of {os.cpu_count()} cores, other users' work included)"
        )


def background_load(seconds: float = 2.0) -> float:
    """Share of the machine's CPU busy while this process sleeps: other people's work."""
    busy0, total0 = cpu_jiffies()
    time.sleep(seconds)
    busy1, total1 = cpu_jiffies()
    return (busy1 - busy0) / max(total1 - total0, 1)


# -- one run ---------------------------------------------------------------------------------------


@dataclass
class RunStats:
    run_id: str
    keys: int
    wall_s: float
    success: bool
    started_at: float = 0.0  # time.time() when materialize() was called
    rss_mb: float = 0.0  # of the process that ran it, right after the run
    steps: dict[str, float] = field(default_factory=dict)  # step key -> seconds
    before_start_s: float = 0.0  # materialize() called -> RUN_START
    in_run_s: float = 0.0  # RUN_START -> RUN_SUCCESS/FAILURE
    after_end_s: float = 0.0  # RUN_SUCCESS -> materialize() returned
    resource_init_s: float = 0.0
    events: int = 0
    materializations: int = 0
    failures: list[str] = field(default_factory=list)
    # per partition: the numeric metadata of its materialization (clone_ms, extract_ms, ...)
    partitions: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def step_sum_s(self) -> float:
        return sum(self.steps.values())

    @property
    def overhead_s(self) -> float:
        return self.wall_s - self.step_sum_s


class Bench:
    """A Dagster instance, the asset and its resources; runs one range of partitions at a time."""

    def __init__(self, instance, parallel: int, io_manager: str, console_level: str) -> None:
        import dagster as dg

        from skillmeat_pipeline.defs.index.assets import marketplace_index
        from skillmeat_pipeline.defs.resources import FetchersResource, resource_defs

        self.dg = dg
        self.instance = instance
        self.asset = marketplace_index
        self.resources = resource_defs()  # built after GITHUB_TOKEN was removed
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
        return RunStats(result.run_id, len(keys), wall, result.success, started_wall, rss_mb())

    def analyse(self, stats: RunStats) -> RunStats:
        """Step durations and the phases around them, from the run's event log."""
        from dagster import DagsterEventType as T

        started_wall = stats.started_at
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
                materialization = event.event_specific_data.materialization
                stats.partitions[materialization.partition] = {
                    name: value.value
                    for name, value in materialization.metadata.items()
                    if isinstance(value.value, int | float)
                }
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


@contextlib.contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the admin URL's server, dropped on exit."""
    import uuid

    import sqlalchemy as sa

    from skillmeat_pipeline.lib.catalog.engine import normalize_url

    admin = sa.create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"bench_backfill_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@contextlib.contextmanager
def environment(work: Path, urls: Servers, name: str, args: argparse.Namespace) -> Iterator:
    """Environment variables of the resources, a catalog and a Dagster instance for one part."""
    import dagster as dg

    with contextlib.ExitStack() as stack:
        if args.catalog == "postgres":
            index_url = stack.enter_context(scratch_postgres(args.postgres_url))
        else:
            index_url = f"sqlite:///{work / f'{name}-catalog.sqlite'}"
        overrides = None
        if args.dagster_storage == "postgres":
            url = stack.enter_context(scratch_postgres(args.postgres_url))
            url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
            overrides = {"storage": {"postgres": {"postgres_url": url}}}
        os.environ.update(
            {
                "SKILLMEAT_SOURCES_FILE": str(work / f"{name}-sources.yaml"),
                "SKILLMEAT_INDEX_URL": index_url,
                "SKILLMEAT_GITHUB_API_URL": urls.api,
                "SKILLMEAT_GITHUB_RAW_URL": urls.raw,
                "SKILLMEAT_GITHUB_GIT_URL": urls.git,
                # the servers listen on loopback, which sources may not reach unless allowed
                "SKILLMEAT_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
                "CLONE_TIMEOUT_SECONDS": "120",
                "MIN_CLONE_DISK_SPACE_MB": "1",
            }
        )
        os.environ.pop("GITHUB_TOKEN", None)
        instance = stack.enter_context(dg.instance_for_test(overrides=overrides))
        yield Bench(instance, args.parallel, args.io_manager, args.console_level)


def fmt_run(label: str, stats: RunStats) -> str:
    steps = ", ".join(
        f"{key.removeprefix('marketplace_index.')} {seconds:.2f}"
        for key, seconds in stats.steps.items()
    )
    write_step = stats.steps.get("marketplace_index.write_index_rows", 0.0)
    catalog_s = sum(m.get("write_ms", 0) for m in stats.partitions.values()) / 1000
    return (
        f"  {label}: wall {stats.wall_s:.2f} s = ops {stats.step_sum_s:.2f} s + orchestration "
        f"{stats.overhead_s:.2f} s (before RUN_START {stats.before_start_s:.2f}, between steps "
        f"{stats.in_run_s - stats.step_sum_s:.2f} incl. resource init "
        f"{stats.resource_init_s:.2f}, after RUN_SUCCESS {stats.after_end_s:.2f}); "
        f"{stats.materializations} materializations, {stats.events} events; "
        f"{'ok' if stats.success else 'FAILED'}\n    steps (s): {steps}\n"
        f"    of write_index_rows {write_step:.2f} s, catalog transactions {catalog_s:.2f} s: "
        f"the rest, {write_step - catalog_s:.2f} s, is logging Dagster events"
    )


# -- part 1: the 12 corpus repositories as GitHub sources ---------------------------------------


def part_corpus(work: Path, urls: Servers, bundles: list[str], args: argparse.Namespace) -> None:

    print(f"\n== Part 1: {len(bundles)} corpus repositories as `github:` sources, one run each ==")
    with environment(work, urls, "corpus", args) as bench:
        sources_path = Path(os.environ["SKILLMEAT_SOURCES_FILE"])
        keys = write_sources(sources_path, [{"github": b.replace("+", "/")} for b in bundles])
        bench.add_partitions(keys)
        print(
            "  orchestration = wall time of dg.materialize() minus the sum over steps of "
            "STEP_START -> STEP_SUCCESS/FAILURE in the run's event log"
        )
        runs = [bench.analyse(bench.run(keys))]
        print(fmt_run(f"first index ({len(keys)} sources)", runs[0]))
        for number in range(1, 4):
            runs.append(bench.analyse(bench.run(keys)))
            print(fmt_run(f"all current #{number} (head unchanged, no clone)", runs[-1]))
        overhead = statistics.median(r.overhead_s for r in runs[1:])
        floor = trivial_runs(bench.instance, args.console_level)
        print(
            f"  per-run orchestration, median of the all-current runs: {overhead:.2f} s; "
            f"for comparison a 1-op asset over the same {len(keys)} partitions "
            f"(MaterializeResult, {len(keys)} materializations), {len(floor)} runs: median "
            f"{statistics.median(floor):.2f} s wall per run"
        )
        for r in runs:
            if not r.success:
                print("  FAILED run", r.run_id, *r.failures[:3], sep="\n    ")


def trivial_runs(instance, console_level: str, runs: int = 5) -> list[float]:
    import dagster as dg

    from skillmeat_pipeline.defs.index.partitions import marketplace_sources

    @dg.asset(partitions_def=marketplace_sources, backfill_policy=dg.BackfillPolicy.multi_run(50))
    def trivial():
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
    n, per_run = args.sources, args.per_run
    how = (
        "runs in sequence in this process"
        if args.concurrent_runs == 1
        else f"{args.concurrent_runs} runs at a time, each worker process running one after another"
    )
    print(
        f"\n== Part 2: backfill of {n} plain-git sources (the {len(bundles)} corpus repositories "
        f"round-robin), {per_run} partitions per run, {how} =="
    )
    sources, repo_of = round_robin_sources(work / "served", urls, bundles, n)
    passes = [("first index", False), ("all current", False)]
    if args.forced:
        passes.append(("forced re-index", True))
    server = urls.process.pid
    with contextlib.ExitStack() as stack:
        bench = stack.enter_context(environment(work, urls, "backfill", args))
        keys = write_sources(Path(os.environ["SKILLMEAT_SOURCES_FILE"]), sources)
        batches = [keys[i : i + per_run] for i in range(0, n, per_run)]
        added = bench.add_partitions(keys)
        print(f"  {n} dynamic partitions added in {added:.2f} s; {len(batches)} runs per pass")
        workers = None
        if args.concurrent_runs > 1:
            workers = stack.enter_context(run_workers(args, work / "run-workers.log"))
            print(
                f"  {args.concurrent_runs} run worker processes started (Dagster imported once "
                "each; the DefaultRunLauncher would start a process per run)"
            )
        print(f"  RSS before the first run: {rss_mb():.0f} MB")
        for label, force in passes:
            profiler = None
            if args.profile and workers is None:
                import cProfile

                profiler = cProfile.Profile()
            cpu0 = CpuSample.take(server)
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            if workers is None:
                runs = [
                    bench.run(batch, force=force) for batch in _progress(batches, label, server)
                ]
            else:
                runs = workers.run_all(batches, force, label)
            elapsed = time.perf_counter() - started
            if profiler:
                profiler.disable()
                out = args.profile / f"{label.replace(' ', '-')}.prof"
                profiler.dump_stats(out)
                print(f"  (main-thread cProfile of this pass: {out})")
            others = "clone workers" if workers is None else "run workers + their clone workers"
            cpu = CpuSample.take(server).since(cpu0, others)
            report_pass(label, [bench.analyse(r) for r in runs], n, elapsed, cpu)
            if label == "first index":
                report_repositories(runs, repo_of)


def _progress(batches: list[list[str]], label: str, server: int) -> Iterator[list[str]]:
    for number, batch in enumerate(batches, 1):
        yield batch
        print(
            f"    {label} run {number}/{len(batches)} done, RSS {rss_mb():.0f} MB, "
            f"clone workers {descendants_rss_mb(skip=server):.0f} MB",
            file=sys.stderr,
            flush=True,
        )


# -- concurrent runs: worker processes on the same Dagster instance ----------------------------


def run_worker(args: argparse.Namespace) -> int:
    """Child mode: run each batch read from stdin (JSON lines) on the $DAGSTER_HOME instance."""
    import dataclasses

    import dagster as dg

    warnings.filterwarnings("ignore")
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever prints must not corrupt replies
    with dg.DagsterInstance.get() as instance:
        bench = Bench(instance, args.parallel, args.io_manager, args.console_level)
        replies.write("ready\n")
        for line in sys.stdin:
            job = json.loads(line)
            stats = bench.run(job["keys"], force=job["force"])
            replies.write(json.dumps(dataclasses.asdict(stats)) + "\n")
    return 0


class RunWorkers:
    def __init__(self, processes: list[subprocess.Popen[str]]) -> None:
        self.processes = processes

    def run_all(self, batches: list[list[str]], force: bool, label: str) -> list[RunStats]:
        import threading

        pending = list(enumerate(batches))
        done: list[tuple[int, RunStats]] = []
        lock = threading.Lock()

        def feed(process: subprocess.Popen[str]) -> None:
            assert process.stdin is not None and process.stdout is not None
            while True:
                with lock:
                    if not pending:
                        return
                    index, batch = pending.pop(0)
                process.stdin.write(json.dumps({"keys": batch, "force": force}) + "\n")
                process.stdin.flush()
                reply = _read_line(process.stdout, RUN_TIMEOUT_S)
                stats = RunStats(**json.loads(reply))
                with lock:
                    done.append((index, stats))
                    count = len(done)
                print(
                    f"    {label} run {count}/{len(batches)} done (batch {index + 1}), "
                    f"worker RSS {stats.rss_mb:.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )

        threads = [threading.Thread(target=feed, args=(p,)) for p in self.processes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if len(done) != len(batches):
            raise RuntimeError(f"only {len(done)} of {len(batches)} runs reported back")
        return [stats for _, stats in done]  # in the order they ended


def _read_line(stream, timeout_s: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout_s)
    line = stream.readline() if ready else ""
    if not line:
        raise RuntimeError(f"a run worker did not answer within {timeout_s:.0f} s or ended")
    return line


@contextlib.contextmanager
def run_workers(args: argparse.Namespace, log_path: Path) -> Iterator[RunWorkers]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--run-worker",
        "--parallel",
        str(args.parallel),
        "--io-manager",
        args.io_manager,
        "--console-level",
        args.console_level,
    ]
    processes: list[subprocess.Popen[str]] = []
    with open(log_path, "w") as log:
        try:
            for _ in range(args.concurrent_runs):
                processes.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        text=True,
                    )
                )
            for process in processes:
                if _read_line(process.stdout, SERVER_START_TIMEOUT_S).strip() != "ready":
                    raise RuntimeError("a run worker did not start")
            yield RunWorkers(processes)
        finally:
            for process in processes:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            for process in processes:
                try:
                    process.wait(SERVER_STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                process.stdout.close()


def report_pass(label: str, runs: list[RunStats], n: int, elapsed: float, cpu: str) -> None:
    wall = elapsed
    ops = sum(r.step_sum_s for r in runs)
    failed = [r for r in runs if not r.success]
    materialized = sum(r.materializations for r in runs)
    rate = n / wall * 60
    verdict = "meets" if rate >= TARGET_PER_MINUTE else "MISSES"
    print(
        f"  {label}: {n} sources in {wall:.1f} s = {rate:.0f} sources/min ({verdict} the "
        f"{TARGET_PER_MINUTE}/min target); {materialized} materializations, "
        f"{sum(r.events for r in runs)} events; {len(failed)} failed runs"
    )
    per_run = [r.wall_s for r in runs]
    overhead = [r.overhead_s for r in runs]
    print(
        f"    per run: wall median {statistics.median(per_run):.2f} s (min {min(per_run):.2f}, "
        f"max {max(per_run):.2f}), sum {sum(per_run):.1f} s = inside ops {ops:.1f} s + "
        f"orchestration {sum(overhead):.1f} s (median {statistics.median(overhead):.2f} s per run)"
    )
    step_totals: dict[str, float] = {}
    for r in runs:
        for key, seconds in r.steps.items():
            name = key.removeprefix("marketplace_index.")
            step_totals[name] = step_totals.get(name, 0.0) + seconds
    print("    ops over the pass (s): " + ", ".join(f"{k} {v:.1f}" for k, v in step_totals.items()))
    meta = [m for r in runs for m in r.partitions.values()]
    totals = {
        k: sum(m.get(k, 0) for m in meta) / 1000 for k in ("clone_ms", "extract_ms", "write_ms")
    }
    print(
        "    per-partition metadata summed (s, across threads): "
        + ", ".join(f"{k} {v:.1f}" for k, v in totals.items())
        + f"; {sum(m.get('bytes_fetched', 0) for m in meta) / 2**20:.0f} MiB fetched, "
        f"{sum(m.get('rows_affected', 0) for m in meta):.0f} rows written"
    )
    print(f"    {cpu}")
    checkpoints = [c for c in RSS_CHECKPOINTS if c <= len(runs)]
    if len(runs) not in checkpoints:
        checkpoints.append(len(runs))
    trend = ""
    if len(runs) >= 6:
        # the first half is the allocator's warm-up (glibc keeps freed heap, then levels off)
        half = runs[len(runs) // 2 :]
        xs = list(range(len(runs) - len(half) + 1, len(runs) + 1))
        slope = statistics.linear_regression(xs, [r.rss_mb for r in half]).slope
        trend = (
            f"; second half of the runs: {min(r.rss_mb for r in half):.0f}-"
            f"{max(r.rss_mb for r in half):.0f} MB, trend {slope:+.2f} MB per run"
        )
    print(
        "    RSS of the process that ran it, after run "
        + ", ".join(f"{c}: {runs[c - 1].rss_mb:.0f} MB" for c in checkpoints)
        + trend
        + f"; peak RSS of this process so far {peak_rss_mb():.0f} MB"
    )
    for r in failed[:3]:
        print("    FAILED run", r.run_id, *r.failures[:2], sep="\n      ")


def report_repositories(runs: list[RunStats], repo_of: dict[str, str]) -> None:
    """Mean per-source numbers of each repository over the pass."""
    by_repo: dict[str, list[dict[str, float]]] = {}
    for r in runs:
        for key, meta in r.partitions.items():
            by_repo.setdefault(repo_of[key], []).append(meta)
    print("    per repository, mean per source (ms): clone / extract / write / total, artifacts")
    rows = sorted(
        by_repo.items(), key=lambda item: -statistics.mean(m["total_ms"] for m in item[1])
    )
    for repo, metas in rows:

        def mean(name: str, metas: list[dict[str, float]] = metas) -> float:
            return statistics.mean(m.get(name, 0) for m in metas)

        print(
            f"      {repo:40} {mean('clone_ms'):6.0f} {mean('extract_ms'):6.0f} "
            f"{mean('write_ms'):6.0f} {mean('total_ms'):6.0f}  {mean('artifact_count'):4.0f}"
            f"  ({len(metas)} sources, {mean('bytes_fetched') / 2**20:.1f} MiB each)"
        )


# -- main ------------------------------------------------------------------------------------------


def round_robin_sources(
    served: Path, urls: Servers, bundles: list[str], count: int
) -> tuple[list[dict], dict[str, str]]:
    """`count` plain-git sources over the corpus repositories in turn, and each key's
    repository. One repository is one source (SPEC §2), so each key is served from a path of
    its own: a symlink to the laid-out repository."""
    sources, repo_of = [], {}
    for i in range(count):
        slug = bundles[i % len(bundles)].replace("+", "/")
        name = f"{i:03d}-{slug.replace('/', '-')}"
        copy = served / "bench" / f"{name}.git"
        copy.parent.mkdir(exist_ok=True)
        copy.symlink_to(served / f"{slug}.git", target_is_directory=True)
        sources.append({"key": f"bench/{name}", "url": urls.url_for(f"bench/{name}")})
        repo_of[f"bench/{name}"] = slug
    return sources, repo_of


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
    parser.add_argument(
        "--per-run", type=int, help="partitions per run (default: the asset's backfill policy)"
    )
    parser.add_argument("--parallel", type=int, default=4, help="max_parallel_sources (4)")
    parser.add_argument("--io-manager", choices=("fs", "mem"), default="fs")
    parser.add_argument("--console-level", default="DEBUG", help="Dagster console log level")
    parser.add_argument("--forced", action="store_true", help="also a forced re-index pass")
    parser.add_argument("--skip-corpus", action="store_true", help="skip part 1")
    parser.add_argument("--skip-backfill", action="store_true", help="skip part 2")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--catalog", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--dagster-storage",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="storage of the Dagster instance (runs, event log)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SKILLMEAT_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin URL where scratch databases are created and dropped",
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of each part-2 pass here")
    parser.add_argument(
        "--concurrent-runs",
        type=int,
        default=1,
        help="runs at a time in part 2, each in its own worker process (1: in this process)",
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.run_worker:
        return run_worker(args)
    if args.quick:
        args.sources = min(args.sources, 50)
    if args.per_run is None:
        from skillmeat_pipeline.defs.index.assets import SOURCES_PER_RUN

        args.per_run = SOURCES_PER_RUN
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    bundles = sorted(p.stem for p in args.corpus.glob("*.bundle"))
    if not bundles:
        parser.error(f"no *.bundle in {args.corpus}")
    warnings.filterwarnings("ignore")  # BetaWarning of backfill_policy etc.
    print(
        f"bench_backfill: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
        f"sources {args.sources}, per run {args.per_run}, max_parallel_sources {args.parallel}, "
        f"io manager {args.io_manager}, console log level {args.console_level}, "
        f"catalog {args.catalog}, Dagster storage {args.dagster_storage}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        work = Path(tmp)
        root = work / "served"
        print(f"laid out {len(bundles)} bundles in {layout(root, args.corpus, bundles):.1f} s")
        load = background_load()
        print(
            f"machine busy before start: {load:.0%} of {os.cpu_count()} cores "
            f"(load average {os.getloadavg()[0]:.1f}){'  -- NOISY' if load > 0.1 else ''}"
        )
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
