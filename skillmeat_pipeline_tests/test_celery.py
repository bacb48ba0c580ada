"""`SKILLMEAT_EXECUTOR=celery`: the steps of `marketplace_index` on `dagster-celery` workers.

The production instance (deploy/dagster.yaml on a scratch PostgreSQL database), its code server
and daemon, RabbitMQ (a virtual host of its own) and two Celery workers, each a process group
started with `dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml` and its own
TMPDIR. All on this machine: the workers are separate processes, not separate network hosts. An
asset backfill through the daemon indexes synthetic sources served over git smart HTTP; the
catalog must equal an in-process run's. 100 sources, and 1 against 2 workers, are in
benchmarks/bench_celery.py (CI's time budget).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml
from sqlalchemy.engine import Engine

from skillmeat_pipeline.definitions import CELERY_SETTINGS, defs
from skillmeat_pipeline.defs.index.assets import marketplace_index
from skillmeat_pipeline.defs.resources import CatalogResource
from skillmeat_pipeline.lib.catalog.export import live_rows
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.fetch.git.sweep import CLONE_DIR_PREFIX
from skillmeat_pipeline.testing.dagster_private import backfill_status, submit_asset_backfill
from skillmeat_pipeline.testing.deployment import (
    DEPLOY_DIR,
    RABBITMQ_HOST,
    CeleryWorker,
    LocalDeployment,
    celery_settings,
    celery_workers,
    local_deployment,
    rabbitmq_vhost,
    start_celery_worker,
)
from skillmeat_pipeline.testing.git_server import Fault, GitHttpServer
from skillmeat_pipeline_tests.fixtures_db import scratch_postgres_database
from skillmeat_pipeline_tests.fixtures_github import make_repo

pytest_plugins = ["skillmeat_pipeline_tests.fixtures_db"]

SOURCES = 24  # 16 for the backfill test, 8 for the killed worker's
QUEUES = ("dagster", "clone", "api")
BACKFILL_S = 300.0
HELD_S = 120.0
# when a row was written differs between two runs; everything else must not
WRITE_TIMES = ("indexed_at", "first_seen_at")


def rabbitmq_reachable() -> None:
    """Fail under CI (the machine starts RabbitMQ), skip elsewhere, when it does not answer."""
    import socket

    host, port = RABBITMQ_HOST.split(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        reason = f"RabbitMQ at {RABBITMQ_HOST} is unreachable ({exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class CeleryDeployment:
    deployment: LocalDeployment
    instance: dg.DagsterInstance
    git: GitHttpServer
    keys: list[str]
    catalog_url: str
    work: Path


@pytest.fixture(scope="module")
def synthetic_repos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("celery-repos")
    for i in range(SOURCES):
        files = {
            f"skills/skill-{j}/SKILL.md": f"---\nname: skill-{i}-{j}\ndescription: synthetic "
            f"skill {j} of repository {i}\n---\n# Skill {j}\n".encode()
            for j in range(i % 3 + 1)
        }
        make_repo(root / "celery" / f"repo-{i:02d}.git", files)
    return root


@pytest.fixture(scope="module")
def celery_deployment(
    postgres_admin: Engine, synthetic_repos: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryDeployment]:
    rabbitmq_reachable()
    work = tmp_path_factory.mktemp("celery-deployment")
    with (
        scratch_postgres_database(postgres_admin) as url,
        GitHttpServer(synthetic_repos) as git,
        rabbitmq_vhost() as broker,
        pytest.MonkeyPatch.context() as monkeypatch,
    ):
        monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        keys = [f"celery/repo-{i:02d}" for i in range(SOURCES)]
        sources_path = work / "sources.yaml"
        sources_path.write_text(yaml.safe_dump({"sources": []}))
        catalog_url = url.render_as_string(hide_password=False)
        settings = {
            "SKILLMEAT_INDEX_URL": catalog_url,
            "SKILLMEAT_SOURCES_FILE": str(sources_path),
            "CLONE_TIMEOUT_SECONDS": "60",
            "MIN_CLONE_DISK_SPACE_MB": "1",
            "SKILLMEAT_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
            **celery_settings(broker, work / "step-storage"),
        }
        with local_deployment(url, work, settings) as running:
            instance = running.instance()
            try:
                # the sensors would index new sources with runs of their own (the sync sensor,
                # ticking between the file and the partitions below, all of them): here only the
                # backfills run
                running.stop_sensor("sources_sync_sensor")
                running.stop_sensor("source_heads_sensor")
                sources = [{"key": key, "url": git.url_for(key)} for key in keys]
                sources_path.write_text(yaml.safe_dump({"sources": sources}))
                instance.add_dynamic_partitions("marketplace_sources", keys)
                yield CeleryDeployment(running, instance, git, keys, catalog_url, work)
            finally:
                instance.dispose()


def submit(deployment: CeleryDeployment, keys: list[str]) -> str:
    """An asset backfill of `keys` through the daemon (as the UI submits one); its id."""
    running = deployment.deployment
    return submit_asset_backfill(
        deployment.instance, running.workspace, "marketplace_index", keys, run_config={}
    )


def wait_for(
    deployment: CeleryDeployment, backfill_id: str, workers: dict[str, CeleryWorker]
) -> list[dg.RunRecord]:
    """Until the daemon marks the backfill done; its runs."""
    running, instance = deployment.deployment, deployment.instance
    deadline = time.monotonic() + BACKFILL_S
    while not backfill_status(instance, backfill_id)[1]:
        if time.monotonic() > deadline or running.daemon.poll() is not None:
            print(running.log_tails())
            for worker in workers.values():
                print(f"--- {worker.log.name}\n{worker.log.read_text(errors='replace')[-4000:]}")
            raise AssertionError(f"backfill {backfill_id} did not end within {BACKFILL_S} s")
        with contextlib.suppress(subprocess.TimeoutExpired):  # a pause that sees the daemon exit
            running.daemon.wait(timeout=1.0)
    return list(instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id})))


def materialized(instance: dg.DagsterInstance, run_ids: list[str]) -> set[str]:
    return {
        e.dagster_event.event_specific_data.materialization.partition
        for run_id in run_ids
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    }


def celery_steps(instance: dg.DagsterInstance, run_ids: list[str]) -> list[tuple[str, str]]:
    """(step key, Celery worker node) of each step task a worker started, in event order."""
    steps = []
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            metadata = entry.dagster_event.event_specific_data.metadata
            if "Celery worker" in metadata:
                steps.append((entry.step_key, metadata["Celery worker"].value))
    return steps


def catalog_rows(url: str, keys: list[str]) -> list[dict]:
    catalog = Catalog.from_url(url)
    try:
        return [
            {k: v for k, v in row.items() if k not in WRITE_TIMES}
            for row in live_rows(catalog)
            if row["source_key"] in keys
        ]
    finally:
        catalog.dispose()


def in_process_rows(postgres_admin: Engine, keys: list[str]) -> list[dict]:
    """The same sources indexed in this process (in-process executor) into a fresh catalog."""
    with scratch_postgres_database(postgres_admin) as url, dg.instance_for_test() as instance:
        catalog_url = url.render_as_string(hide_password=False)
        instance.add_dynamic_partitions("marketplace_sources", keys)
        result = dg.materialize(
            [marketplace_index],
            instance=instance,
            resources={**defs.resources, "catalog": CatalogResource(url=catalog_url)},
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
        assert result.success
        return catalog_rows(catalog_url, keys)


def leftover_clones(worker: CeleryWorker) -> list[str]:
    return sorted(p.name for p in worker.tmp.iterdir() if p.name.startswith(CLONE_DIR_PREFIX))


# -- the files ------------------------------------------------------------------------------------


def test_workers_get_the_settings_of_the_run_side():
    config = yaml.safe_load((DEPLOY_DIR / "celery.yaml").read_text())["execution"]["config"]
    assert config["config_source"] == CELERY_SETTINGS
    assert config["broker"] == {"env": "SKILLMEAT_CELERY_BROKER_URL"}
    assert config["backend"] == {"env": "SKILLMEAT_CELERY_BACKEND_URL"}


def test_clone_and_api_steps_have_their_own_queues():
    queues = {
        node.name: node.definition.tags.get("dagster-celery/queue")
        for node in marketplace_index.node_def.nodes
    }
    assert queues["clone_and_extract"] == "clone"
    assert queues["fetch_from_api"] == "api"
    assert queues["resolve_heads"] is None  # the default queue, "dagster"


# -- the deployment -------------------------------------------------------------------------------


def test_backfill_on_two_celery_workers_equals_an_in_process_run(
    celery_deployment: CeleryDeployment, postgres_admin: Engine
):
    deployment, instance = celery_deployment, celery_deployment.instance
    keys = deployment.keys[:16]
    with celery_workers(["worker-a", "worker-b"], QUEUES, deployment.work) as workers:
        records = wait_for(deployment, submit(deployment, keys), workers)
    run_ids = [r.dagster_run.run_id for r in records]
    assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
    assert materialized(instance, run_ids) == set(keys)

    steps = celery_steps(instance, run_ids)
    assert {node for _step, node in steps} == {w.node for w in workers.values()}
    assert {step for step, _node in steps} >= {
        "marketplace_index.resolve_heads",
        "marketplace_index.select_strategies",
        "marketplace_index.clone_and_extract",
        "marketplace_index.write_index_rows",
    }
    # every step output went through the shared step storage, none through a worker's disk
    stored = [p for p in (deployment.work / "step-storage").rglob("*") if p.is_file()]
    assert {p.parent.name for p in stored} >= {
        "marketplace_index.resolve_heads",
        "marketplace_index.clone_and_extract",
    }

    rows = catalog_rows(deployment.catalog_url, keys)
    assert len(rows) == sum(i % 3 + 1 for i in range(16))
    assert rows == in_process_rows(postgres_admin, keys)


def test_a_worker_killed_mid_clone_loses_no_row(
    celery_deployment: CeleryDeployment, postgres_admin: Engine
):
    deployment, instance, git = celery_deployment, celery_deployment.instance, celery_deployment.git
    keys = deployment.keys[16:]
    held = keys[0]
    # the first pack request of one source waits: its clone is under way until released
    git.set_fault(held, Fault.HOLD, method="POST", times=1)
    with celery_workers(["worker-a", "worker-b"], QUEUES, deployment.work / "kill") as workers:
        with contextlib.ExitStack() as release:
            release.callback(git.release, held)
            backfill_id = submit(deployment, keys)
            assert git.wait_held(held, HELD_S), deployment.deployment.log_tails()
            (run,) = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            cloning = [
                node
                for step, node in celery_steps(instance, [run.dagster_run.run_id])
                if step == "marketplace_index.clone_and_extract"
            ]
            (node,) = cloning
            (killed,) = [w for w in workers.values() if w.node == node]
            (survivor,) = [w for w in workers.values() if w is not killed]
            killed.kill()
            # it was mid-clone: its clone directory is still there
            assert leftover_clones(killed)
        records = wait_for(deployment, backfill_id, workers)
        run_ids = [r.dagster_run.run_id for r in records]
        assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
        assert materialized(instance, run_ids) == set(keys)
        clone_nodes = [
            node
            for step, node in celery_steps(instance, run_ids)
            if step == "marketplace_index.clone_and_extract"
        ]
        assert clone_nodes == [killed.node, survivor.node]  # the step ran again, elsewhere
        rows = catalog_rows(deployment.catalog_url, keys)
        assert rows == in_process_rows(postgres_admin, keys)
        assert not leftover_clones(survivor)

        # restarted (as its supervisor would), the killed worker removes what it left
        restarted = start_celery_worker(
            killed.name, QUEUES, deployment.work / "restart", tmp=killed.tmp
        )
        restarted.stop()
    assert not leftover_clones(killed)
