"""The deployment files under `deploy/`: valid for the pinned Dagster, and working.

The daemon test starts the production instance (deploy/dagster.yaml, with its PostgreSQL settings
pointed at a scratch database), a code server started the way the Dockerfile starts it, and
`dagster-daemon run` with a workspace shaped like deploy/workspace.yaml. Two runs are submitted to
the queue with `dagster job launch`; with the `git_clone` pool at 1 they run at the same time but
never clone at the same time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from skillmeat_pipeline.defs.index.jobs import BATCH_JOB_NAME, batch_run_config
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.testing.dagster_private import instance_config
from skillmeat_pipeline.testing.deployment import DEPLOY_DIR, local_deployment
from skillmeat_pipeline.testing.deployment import PROJECT_ROOT as ROOT
from skillmeat_pipeline.testing.git_server import Fault, GitHttpServer, peak_concurrency
from skillmeat_pipeline_tests.fixtures_db import scratch_postgres_database
from skillmeat_pipeline_tests.fixtures_github import make_repo

pytest_plugins = ["skillmeat_pipeline_tests.fixtures_db"]

RUNS_S = 120.0
FINISHED = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}


# -- the files ------------------------------------------------------------------------------------


def production_config() -> dict:
    # validated against the instance schema without a database (no public API: see the module)
    return instance_config(DEPLOY_DIR, "dagster.yaml")


def test_no_instance_file_at_the_root():
    # `dg` and `dagster dev` run from the repository root would pick up a root dagster.yaml and
    # then need the production PostgreSQL variables; the deployment files live in deploy/.
    assert not (ROOT / "dagster.yaml").exists()
    assert not (ROOT / "workspace.yaml").exists()


def test_production_dagster_yaml_matches_the_instance_schema():
    config = production_config()
    postgres = config["storage"]["postgres"]["postgres_db"]
    assert postgres["scheme"] == "postgresql+psycopg2"
    for field in ("username", "password", "hostname", "db_name", "port"):
        assert set(postgres[field]) == {"env"}, f"{field} must come from the environment"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["max_runtime_seconds"] > 0
    retries = config["run_retries"]
    assert retries["enabled"] and retries["max_retries"] >= 1
    assert retries["retry_on_asset_or_op_failure"] is False  # crashed workers only
    pools = config["concurrency"]["pools"]
    assert pools["granularity"] == "op" and pools["default_limit"] >= 1
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0], line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_workspace_loads_the_code_server_the_dockerfile_starts():
    workspace = yaml.safe_load((DEPLOY_DIR / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    port = entry["grpc_server"]["port"]
    instructions = dockerfile_instructions()
    (cmd,) = [yaml.safe_load(arg) for op, arg in instructions if op == "CMD"]
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-p") + 1] == str(port)
    module = cmd[cmd.index("-m") + 1]
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file()


def test_dockerfile_is_slim_non_root_and_installs_from_pyproject():
    instructions = dockerfile_instructions()
    (base,) = [arg for op, arg in instructions if op == "FROM"]
    assert base.startswith("python:3.11") and base.endswith("-slim")
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    runs = " ".join(arg for op, arg in instructions if op == "RUN")
    copies = [arg for op, arg in instructions if op == "COPY"]
    assert any(c.startswith("pyproject.toml") for c in copies)
    # dependencies from pyproject.toml, the Celery extra included (the image also runs workers)
    assert "pip install --no-cache-dir '.[celery]'" in runs
    # the webserver, the daemon and the workers run from this image with their config inside it
    assert any(
        all(f in c for f in ("dagster.yaml", "workspace.yaml", "celery.yaml")) for c in copies
    )
    # and every file it copies is in the build context (the repository root)
    for copy in copies:
        *sources, _destination = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    env = " ".join(arg for op, arg in instructions if op == "ENV")
    assert "DAGSTER_HOME=" in env


# -- the daemon, on PostgreSQL --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_repos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deploy-repos")
    for name in ("one", "two"):
        text = f"---\nname: {name}\ndescription: a skill named {name}\n---\n"
        make_repo(root / "local" / f"{name}.git", {f"skills/{name}/SKILL.md": text.encode()})
    return root


@pytest.fixture
def deployment(
    postgres_admin: Engine, tiny_repos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict]:
    """The production instance on a scratch database, a code server and the daemon."""
    with (
        scratch_postgres_database(postgres_admin) as url,
        GitHttpServer(tiny_repos) as git,
    ):
        sources_path = tmp_path / "sources.yaml"
        sources_path.write_text(
            yaml.safe_dump(
                {
                    "sources": [
                        {"key": f"local/{n}", "url": git.url_for(f"local/{n}")}
                        for n in ("one", "two")
                    ]
                }
            )
        )
        catalog_url = url.render_as_string(hide_password=False)
        settings = {
            # the catalog shares the database with the Dagster storage, as it may in production
            "SKILLMEAT_INDEX_URL": catalog_url,
            "SKILLMEAT_SOURCES_FILE": str(sources_path),
            "CLONE_TIMEOUT_SECONDS": "60",
            "MIN_CLONE_DISK_SPACE_MB": "1",
            # the git server listens on loopback, which sources may not reach unless allowed
            "SKILLMEAT_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
        }
        monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        with local_deployment(url, tmp_path, settings) as running:
            instance = running.instance()
            try:
                yield {
                    "instance": instance,
                    "git": git,
                    "workspace": running.workspace,
                    "catalog_url": catalog_url,
                    "deployment": running,
                }
            finally:
                instance.dispose()


def wait_for_runs(instance: dg.DagsterInstance, run_ids: list[str]) -> None:
    """Until every run has ended, from the event log's notifications (LISTEN on PostgreSQL)."""
    ended = {run_id: threading.Event() for run_id in run_ids}
    handlers = {}
    for run_id in run_ids:

        def handler(entry, _cursor, run_id=run_id) -> None:
            if entry.dagster_event and entry.dagster_event.event_type in (
                dg.DagsterEventType.RUN_SUCCESS,
                dg.DagsterEventType.RUN_FAILURE,
                dg.DagsterEventType.RUN_CANCELED,
            ):
                ended[run_id].set()

        handlers[run_id] = handler
        instance.event_log_storage.watch(run_id, None, handler)
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in FINISHED:
            ended[run_id].set()
    timer_done = threading.Event()
    timer = threading.Timer(RUNS_S, timer_done.set)
    timer.start()
    try:
        for run_id, event in ended.items():
            while not event.wait(1.0):  # 1 s slices so the overall deadline is noticed
                if timer_done.is_set():
                    status = instance.get_run_by_id(run_id).status
                    raise AssertionError(f"run {run_id} did not end within {RUNS_S} s ({status})")
    finally:
        timer.cancel()
        for run_id, handler in handlers.items():
            instance.event_log_storage.end_watch(run_id, handler)


def test_daemon_runs_queued_partition_runs_on_postgres_within_the_clone_pool(deployment):
    instance: dg.DagsterInstance = deployment["instance"]
    git: GitHttpServer = deployment["git"]
    instance.add_dynamic_partitions("marketplace_sources", ["local/one", "local/two"])
    instance.event_log_storage.set_concurrency_slots("git_clone", 1)
    for name in ("one", "two"):  # slow enough that two unbounded clones would overlap
        git.set_fault(f"local/{name}", Fault.SLOW, bytes_per_second=300)

    # one run of the asset job over a partition range, one of the batch job: both queued
    running = deployment["deployment"]
    with ThreadPoolExecutor(max_workers=2) as launcher:  # two `dagster job launch` at once
        ranged_launch = launcher.submit(
            running.launch,
            "index_sources",
            tags={
                "dagster/asset_partition_range_start": "local/one",
                "dagster/asset_partition_range_end": "local/one",
            },
        )
        batched_launch = launcher.submit(
            running.launch, BATCH_JOB_NAME, run_config=batch_run_config(["local/two"])
        )
        ranged, batched = ranged_launch.result(), batched_launch.result()
    assert instance.get_run_by_id(ranged).status in (
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    )
    try:
        wait_for_runs(instance, [ranged, batched])
    except AssertionError:
        print(deployment["deployment"].log_tails())
        raise

    records = {
        r.dagster_run.run_id: r
        for r in instance.get_run_records(dg.RunsFilter(run_ids=[ranged, batched]))
    }
    if {r.dagster_run.status for r in records.values()} != {dg.DagsterRunStatus.SUCCESS}:
        print(running.log_tails())
    assert {r.dagster_run.status for r in records.values()} == {dg.DagsterRunStatus.SUCCESS}
    for run_id in (ranged, batched):
        kinds = {e.dagster_event.event_type for e in instance.all_logs(run_id) if e.dagster_event}
        assert dg.DagsterEventType.RUN_ENQUEUED in kinds  # it went through the queue
    materialized = {
        run_id: {
            e.dagster_event.event_specific_data.materialization.partition
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        }
        for run_id in (ranged, batched)
    }
    assert materialized == {ranged: {"local/one"}, batched: {"local/two"}}

    # the runs were in progress at the same time, and still never cloned at the same time
    starts = [r.start_time for r in records.values()]
    ends = [r.end_time for r in records.values()]
    assert max(starts) < min(ends)
    git.stop()  # its request log is complete once it stopped
    clones = [r for r in git.requests() if r.path.endswith("/git-upload-pack")]
    assert len(clones) >= 2
    assert peak_concurrency(clones) == 1

    catalog = Catalog.from_url(deployment["catalog_url"])
    assert all(catalog.indexed_commits(["local/one", "local/two"]).values())
    catalog.dispose()
    tables = set(sa.inspect(sa.create_engine(deployment["catalog_url"])).get_table_names())
    dagster_tables = {
        "runs",
        "event_logs",
        "dynamic_partitions",
        "concurrency_slots",
        "instigators",
        "job_ticks",
        "daemon_heartbeats",
    }
    assert dagster_tables <= tables, sorted(tables)
    assert {"sources", "catalog_entries", "push_events"} <= tables
