"""`skillmeat-pipeline demo`: the whole pipeline on sample repositories, with no set-up.

1. build the sample marketplace repositories (`testing/sample_repos.py`) in `<dir>/repos`;
2. serve them on loopback: the git smart-HTTP server and the GitHub REST/raw emulator;
3. write a sources file pointing at them and sync the `marketplace_sources` partitions;
4. materialize every partition of `marketplace_index` in a real Dagster instance (SQLite, in
   `<dir>/dagster_home`), in process, and print what each partition's metadata says;
5. push a commit to one repository and materialize again: unchanged sources cost nothing, the
   changed one is re-indexed (and, its artifact count now known, with another strategy);
6. add a marketplace whose entries point at other repositories (`testing/sample_marketplace.py`:
   pinned, `git-subdir`, unreachable, `npm`, ...) and index it as `skillmeat-pipeline index` does:
   the marketplace, then the plugin sources it lists (SPEC §2.1);
7. with `serve=True`, keep the servers up and run `dagster dev` on the same instance until Ctrl-C
   (`demo_ui.py`).

`<dir>` (default `./.demo`) is rebuilt on every run, so the output is the same every time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from skillmeat_pipeline.demo_ui import HOST, Echo, port_is_free, serve_ui
from skillmeat_pipeline.testing.sample_marketplace import MARKET, build_sample_marketplace
from skillmeat_pipeline.testing.sample_repos import (
    SAMPLE_UPDATE,
    SampleRepo,
    apply_update,
    build_sample_repos,
)

DEFAULT_DIR = Path(".demo")
DEFAULT_PORT = 3000
MARKER = "SKILLMEAT_DEMO"  # a folder holding this file was made by the demo and may be rebuilt

DAGSTER_YAML = """\
# The demo's Dagster instance: SQLite storage in this folder (the default), no telemetry.
telemetry:
  enabled: false
nux:
  enabled: false
"""

# In-process runs log to the instance (the UI shows every line); the console stays readable.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class DemoError(RuntimeError):
    """The demo cannot run; the message says why and what to do."""


@dataclass(frozen=True)
class DemoLayout:
    """Where the demo keeps its files; everything is below `root`."""

    root: Path

    @property
    def repos(self) -> Path:
        return self.root / "repos"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def index_url(self) -> str:
        return f"sqlite:///{self.catalog_path}"

    @property
    def sources_file(self) -> Path:
        return self.root / "sources.yaml"

    @property
    def dagster_dev_log(self) -> Path:
        return self.root / "dagster-dev.log"


@dataclass(frozen=True)
class PartitionSummary:
    """One partition's materialization in a run, as its metadata tells it."""

    key: str
    status: str
    strategy: str
    artifacts: int
    api_calls: int
    raw_reads: int
    clone_ms: int
    extract_ms: int
    total_ms: int

    def row(self) -> tuple[str, ...]:
        return (
            self.key,
            self.status,
            self.strategy,
            str(self.artifacts),
            str(self.api_calls),
            str(self.raw_reads),
            str(self.clone_ms),
            str(self.extract_ms),
            str(self.total_ms),
        )


SUMMARY_HEADERS = (
    "SOURCE",
    "STATUS",
    "STRATEGY",
    "ARTIFACTS",
    "REST CALLS",
    "RAW READS",
    "CLONE ms",
    "EXTRACT ms",
    "TOTAL ms",
)


def prepare_layout(directory: Path) -> DemoLayout:
    """An empty demo folder; one the demo made before is deleted first, any other is refused."""
    root = directory.expanduser().resolve()
    if root.exists():
        if not root.is_dir():
            raise DemoError(f"{root} is a file; pass another --dir")
        if (root / MARKER).is_file():
            shutil.rmtree(root)
        elif any(root.iterdir()):
            raise DemoError(
                f"{root} exists and was not made by the demo; pass another --dir or remove it"
            )
    layout = DemoLayout(root)
    layout.dagster_home.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text(
        "Made by `skillmeat-pipeline demo`, which deletes and rebuilds this folder.\n"
    )
    (layout.dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    return layout


def demo_environment(
    layout: DemoLayout, git_url: str, api_url: str, raw_url: str
) -> dict[str, str]:
    """What the pipeline reads from the environment, pointed at the demo's files and servers."""
    return {
        "DAGSTER_HOME": str(layout.dagster_home),
        "SKILLMEAT_SOURCES_FILE": str(layout.sources_file),
        "SKILLMEAT_INDEX_URL": layout.index_url,
        "SKILLMEAT_GITHUB_API_URL": api_url,
        "SKILLMEAT_GITHUB_RAW_URL": raw_url,
        "SKILLMEAT_GITHUB_GIT_URL": git_url,
        # the demo's servers listen on loopback, which sources may not reach unless allowed
        "SKILLMEAT_ALLOWED_PRIVATE_HOSTS": HOST,
        # the sample repositories are a few KB: a nearly full disk must not send them to the API
        "MIN_CLONE_DISK_SPACE_MB": "20",
        "CLONE_TIMEOUT_SECONDS": "30",
    }


# never sent to the demo's loopback servers
UNSET_VARIABLES = ("GITHUB_TOKEN",)


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str], unset: Sequence[str] = ()) -> Iterator[None]:
    """Set `values` and remove `unset` in `os.environ`, then restore what was there."""
    saved = {name: os.environ.get(name) for name in [*values, *unset]}
    os.environ.update(values)
    for name in unset:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_sources_file(path: Path, repos: Sequence[SampleRepo], git_url: str) -> None:
    header = (
        "# Written by `skillmeat-pipeline demo`: the sample repositories, served on loopback.\n"
        "# GitHub sources: cloned from SKILLMEAT_GITHUB_GIT_URL, read over the emulated API.\n"
    )
    entries = [repo.source_entry(git_url) for repo in repos]
    path.write_text(header + yaml.safe_dump({"sources": entries}, sort_keys=False))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return "\n".join(
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    )


class _StrategyEcho(logging.Handler):
    """Prints each strategy selection (the structured record `lib/scan.py` logs) as it happens."""

    def __init__(self, echo: Echo) -> None:
        super().__init__(logging.INFO)
        self.echo = echo  # emit() runs under the handler's own lock: one line at a time

    def emit(self, record: logging.LogRecord) -> None:
        selection = getattr(record, "record", None)
        if not isinstance(selection, dict) or "selected_strategy" not in selection:
            return
        self.echo(
            f"      {selection.get('source')}: {selection.get('selected_strategy')} "
            f"({selection.get('reason')})"
        )


@contextlib.contextmanager
def _strategy_progress(echo: Echo) -> Iterator[None]:
    logger = logging.getLogger("skillmeat_pipeline.lib.scan.pipeline")
    handler = _StrategyEcho(echo)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class Demo:
    """The demo's steps over one layout, with the servers running (see `run_demo`)."""

    def __init__(self, layout: DemoLayout, repos: Sequence[SampleRepo], echo: Echo) -> None:
        import dagster as dg

        self.dg = dg
        self.layout = layout
        self.repos = list(repos)
        self.keys = [repo.slug for repo in repos]
        self.echo = echo

    def sync_partitions(self, instance: Any) -> list[str]:
        """What `skillmeat-pipeline sources sync` does: partitions and source rows = the file."""
        from skillmeat_pipeline.defs.index.partitions import sync_sources
        from skillmeat_pipeline.lib.catalog.store import Catalog
        from skillmeat_pipeline.lib.core.sources import load_sources

        configured = load_sources(self.layout.sources_file)
        catalog = Catalog.from_url(self.layout.index_url)
        try:
            catalog.migrate()
            _, added, _ = sync_sources(instance, catalog, configured)
        finally:
            catalog.dispose()
        return added

    def materialize(self, instance: Any) -> Any:
        """One in-process run over every partition (a partition range, as backfills batch them)."""
        from skillmeat_pipeline.defs.index.assets import marketplace_index
        from skillmeat_pipeline.defs.resources import resource_defs

        with _strategy_progress(self.echo):
            return self.dg.materialize(
                [marketplace_index],
                instance=instance,
                # built now, inside the demo's environment (GITHUB_TOKEN unset)
                resources=resource_defs(),
                run_config=QUIET_RUN_CONFIG,
                tags={
                    "dagster/asset_partition_range_start": self.keys[0],
                    "dagster/asset_partition_range_end": self.keys[-1],
                    "skillmeat/demo": "true",
                },
                raise_on_error=False,
            )

    def summaries(self, instance: Any, run_id: str) -> list[PartitionSummary]:
        """Each partition's row, read from the materialization metadata the run stored."""
        dg = self.dg
        found: dict[str, dict[str, Any]] = {}
        for log in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            materialization = log.dagster_event.event_specific_data.materialization
            found[materialization.partition] = {
                name: value.value for name, value in materialization.metadata.items()
            }
        rows = []
        for key in self.keys:
            meta = found.get(key)
            if meta is None:
                rows.append(PartitionSummary(key, "FAILED", "-", 0, 0, 0, 0, 0, 0))
                continue
            rows.append(
                PartitionSummary(
                    key=key,
                    status=str(meta.get("scan_status", "-")),
                    strategy=str(meta.get("strategy", "-")),
                    artifacts=int(meta.get("artifact_count", 0)),
                    api_calls=int(meta.get("api_calls", 0)),
                    raw_reads=int(meta.get("raw_reads", 0)),
                    clone_ms=int(meta.get("clone_ms", 0)),
                    extract_ms=int(meta.get("extract_ms", 0)),
                    total_ms=int(meta.get("total_ms", 0)),
                )
            )
        return rows

    def checks(self, instance: Any, run_id: str) -> tuple[int, int]:
        """(passed, evaluated) asset checks of the run."""
        logs = instance.all_logs(run_id, of_type=self.dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        results = [log.dagster_event.event_specific_data.passed for log in logs]
        return sum(results), len(results)

    def run_and_report(self, instance: Any, title: str) -> bool:
        self.echo(f"{title}: materializing marketplace_index for {len(self.keys)} partitions")
        started = time.monotonic()
        result = self.materialize(instance)
        elapsed = time.monotonic() - started
        rows = self.summaries(instance, result.run_id)
        passed, evaluated = self.checks(instance, result.run_id)
        outcome = "succeeded" if result.success else "FAILED"
        self.echo(
            f"      run {result.run_id[:8]} {outcome} in {elapsed:.1f} s; "
            f"asset checks: {passed} of {evaluated} passed"
        )
        self.echo(format_table(SUMMARY_HEADERS, [row.row() for row in rows]))
        return bool(result.success)


class _NoProgress:
    def update(self, _done: int) -> None:
        """The demo prints its tables; a progress bar would only interleave with them."""


def index_marketplace(layout: DemoLayout, instance: Any, echo: Echo) -> None:
    """Add the sample marketplace to the sources file and index it with its plugin sources."""
    import dagster as dg

    from skillmeat_pipeline.defs.index.assets import marketplace_index
    from skillmeat_pipeline.defs.index.jobs import index_sources_job
    from skillmeat_pipeline.defs.resources import resource_defs
    from skillmeat_pipeline.index_command import INDEX_JOB_NAME, run_index
    from skillmeat_pipeline.lib.catalog.search import search_catalog
    from skillmeat_pipeline.lib.catalog.store import Catalog
    from skillmeat_pipeline.lib.core.sources import load_sources

    text = layout.sources_file.read_text()
    listed = yaml.safe_load(text)["sources"] + [{"github": MARKET}]
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    layout.sources_file.write_text(header + yaml.safe_dump({"sources": listed}, sort_keys=False))
    # built now, inside the demo's environment (GITHUB_TOKEN unset)
    job = dg.Definitions(
        assets=[marketplace_index], jobs=[index_sources_job], resources=resource_defs()
    ).resolve_job_def(INDEX_JOB_NAME)
    catalog = Catalog.from_url(layout.index_url)
    try:
        results = run_index(
            instance,
            catalog,
            load_sources(layout.sources_file),
            [MARKET],
            progress=lambda _total: contextlib.nullcontext(_NoProgress()),
            job=job,
        )
        rows = [
            (
                r.key,
                r.status,
                "-" if r.artifact_count is None else str(r.artifact_count),
                r.detail.splitlines()[0][:70] if r.detail else "",
            )
            for r in results
        ]
        rows += [
            (s.key, "skipped", "-", (s.last_error or "")[:70])
            for s in catalog.source_responses()
            if s.last_status is not None and s.last_status.value == "skipped"
        ]
        echo(format_table(("SOURCE", "STATUS", "ARTIFACTS", "DETAIL"), rows))
        echo(
            "      failed and skipped entries are the sample's unreachable ones (a missing "
            "repository, ref and pin) and forms that are not git (npm, unknown): they never fail "
            "the marketplace or its other entries"
        )
        hits = search_catalog(catalog, "database migrations", limit=1)
        if hits:
            echo(f'      search "database migrations": {hits[0].name} ({hits[0].install_name})')
    finally:
        catalog.dispose()


def _catalog_report(layout: DemoLayout, keys: Sequence[str], echo: Echo) -> None:
    from skillmeat_pipeline.lib.catalog.search import search_catalog
    from skillmeat_pipeline.lib.catalog.store import Catalog

    catalog = Catalog.from_url(layout.index_url)
    try:
        kinds: Counter[str] = Counter()
        for key in keys:
            kinds.update(entry.artifact_type.value for entry in catalog.entries(key))
        statuses = Counter(
            entry.status.value
            for entry in catalog.entries(SAMPLE_UPDATE.slug, include_removed=True)
        )
        by_kind = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        echo(f"Catalog {layout.catalog_path}: {sum(kinds.values())} artifacts ({by_kind})")
        echo(
            f"      {SAMPLE_UPDATE.slug} after the push: "
            + ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        )
        hits = search_catalog(catalog, "incident", limit=3)
        echo('      search "incident": ' + ", ".join(f"{h.name} ({h.source_key})" for h in hits))
    finally:
        catalog.dispose()


def run_demo(
    directory: Path = DEFAULT_DIR, *, serve: bool = False, port: int = DEFAULT_PORT, echo: Echo
) -> int:
    """The demo; returns the process exit code (0: every run succeeded, and a clean stop)."""
    from skillmeat_pipeline.testing.git_server import GitHttpServer
    from skillmeat_pipeline.testing.github_emulator import GitHubEmulator

    if serve and not port_is_free(port):
        raise DemoError(f"port {port} on {HOST} is in use; pass another --port")
    started = time.monotonic()
    layout = prepare_layout(directory)
    echo(f"[1/7] Building the sample marketplace repositories in {layout.repos}")
    repos = build_sample_repos(layout.repos)
    for repo in repos:
        echo(f"      {repo.slug:26} {repo.summary}")
    build_sample_marketplace(layout.repos)
    echo(f"      {MARKET:26} a marketplace of references to tools/* (used in step 7)")
    with (
        GitHttpServer(layout.repos) as git,
        GitHubEmulator(layout.repos, git_base_url=git.base_url, anonymous_rate_limit=5000) as hub,
    ):
        echo(
            f"[2/7] Serving them on loopback: git {git.base_url}, "
            f"GitHub API emulator {hub.api_url} (raw {hub.raw_url})"
        )
        environment = demo_environment(layout, git.base_url, hub.api_url, hub.raw_url)
        with patched_environ(environment, UNSET_VARIABLES), warnings.catch_warnings():
            # Dagster's preview/beta notices about APIs the code location uses: not news here
            warnings.simplefilter("ignore")
            write_sources_file(layout.sources_file, repos, git.base_url)
            demo = Demo(layout, repos, echo)
            with demo.dg.DagsterInstance.get() as instance:
                added = demo.sync_partitions(instance)
                echo(
                    f"[3/7] Wrote {layout.sources_file} ({len(repos)} sources) and synced the "
                    f"Dagster instance in {layout.dagster_home}: {len(added)} partitions added"
                )
                ok = demo.run_and_report(instance, "[4/7] Run 1, first index")
                commit = apply_update(layout.repos, SAMPLE_UPDATE)
                echo(f"[5/7] Pushed {commit[:8]} to {SAMPLE_UPDATE.slug}: {SAMPLE_UPDATE.message}")
                ok = demo.run_and_report(instance, "[6/7] Run 2, after the push") and ok
                _catalog_report(layout, demo.keys, echo)
                echo(
                    f"[7/7] Added the marketplace {MARKET} (entries in other repositories) and "
                    "indexed it as `skillmeat-pipeline index` does: the marketplace, then its "
                    "plugin sources"
                )
                index_marketplace(layout, instance, echo)
            echo(f"Done in {time.monotonic() - started:.1f} s.")
            if not ok:
                echo("Some partitions failed: see the run logs in the Dagster UI (--serve).")
            if not serve:
                echo("")
                echo("Browse partitions, metadata plots, checks and runs in the Dagster UI:")
                echo("  skillmeat-pipeline demo --serve        (then open http://127.0.0.1:3000)")
                return 0 if ok else 1
            code = serve_ui(
                environment,
                UNSET_VARIABLES,
                port=port,
                log_path=layout.dagster_dev_log,
                index_url=layout.index_url,
                echo=echo,
            )
    echo("Stopped: the Dagster UI and the sample servers are down.")
    return code if ok else 1
