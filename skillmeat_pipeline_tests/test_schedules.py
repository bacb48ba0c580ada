"""Schedules: the periodic re-index requests batched runs over contiguous partition ranges."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import dagster as dg
import pytest

from skillmeat_pipeline.definitions import defs
from skillmeat_pipeline.defs.automation.schedules import nightly_reindex, weekly_forced_reindex
from skillmeat_pipeline.defs.index.assets import SOURCES_PER_RUN

START = "dagster/asset_partition_range_start"
END = "dagster/asset_partition_range_end"
AT = datetime(2026, 3, 4, 3, 0, tzinfo=UTC)


def evaluate(schedule: dg.ScheduleDefinition, instance: dg.DagsterInstance):
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=AT,
        repository_def=defs.get_repository_def(),
    )
    return schedule(context)


def covered(requests: list[dg.RunRequest], keys: list[str]) -> list[list[str]]:
    """The partitions of each requested range, in order."""
    position = {k: i for i, k in enumerate(keys)}
    return [keys[position[r.tags[START]] : position[r.tags[END]] + 1] for r in requests]


def test_nightly_reindex_covers_every_partition_once_in_batched_ranges():
    keys = [f"org/repo-{i:03d}" for i in range(2 * SOURCES_PER_RUN + 10)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("marketplace_sources", keys)
        requests = evaluate(nightly_reindex, instance)
        again = evaluate(nightly_reindex, instance)
    assert len(requests) == 3  # not one run per partition
    ranges = covered(requests, keys)
    assert [len(r) for r in ranges] == [SOURCES_PER_RUN, SOURCES_PER_RUN, 10]
    assert [k for r in ranges for k in r] == keys  # contiguous, no gap, no overlap
    # a normal run: heads are re-checked, unchanged sources are only recorded current
    assert all(not r.run_config for r in requests)
    assert all(r.run_key.startswith("nightly_reindex:2026-03-04T03:00:") for r in requests)
    assert [r.run_key for r in again] == [r.run_key for r in requests]  # a retried tick adds none


def test_weekly_forced_reindex_forces_with_valid_run_config():
    keys = [f"k{i}" for i in range(SOURCES_PER_RUN + 5)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("marketplace_sources", keys)
        requests = evaluate(weekly_forced_reindex, instance)
    assert len(requests) == 2
    job = defs.resolve_job_def("index_sources")
    for request in requests:
        force = request.run_config["ops"]["marketplace_index"]["ops"]["resolve_heads"]["config"]
        assert force == {"force": True}
        assert dg.validate_run_config(job, request.run_config)


def test_schedules_skip_without_sources_and_have_documented_default_statuses():
    with dg.instance_for_test() as instance:
        assert isinstance(evaluate(nightly_reindex, instance), dg.SkipReason)
    assert nightly_reindex.default_status == dg.DefaultScheduleStatus.RUNNING
    assert weekly_forced_reindex.default_status == dg.DefaultScheduleStatus.STOPPED
    assert nightly_reindex.cron_schedule == "0 3 * * *"
    assert nightly_reindex.execution_timezone == "UTC"
    assert {s.name for s in defs.schedules} == {"nightly_reindex", "weekly_forced_reindex"}
    sensors = {s.name: s.default_status for s in defs.sensors}
    assert sensors == {
        "sources_sync_sensor": dg.DefaultSensorStatus.RUNNING,
        "source_heads_sensor": dg.DefaultSensorStatus.RUNNING,
        "push_events_sensor": dg.DefaultSensorStatus.RUNNING,
        "catalog_automation": dg.DefaultSensorStatus.RUNNING,
    }


@pytest.mark.parametrize("count", [5000])
def test_nightly_reindex_of_5000_sources_is_200_runs_and_fast(count: int):
    keys = [f"org-{i // 100:02d}/repo-{i:04d}" for i in range(count)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("marketplace_sources", keys)
        started = time.monotonic()
        requests = evaluate(nightly_reindex, instance)
        elapsed = time.monotonic() - started
    assert len(requests) == count // SOURCES_PER_RUN
    assert [k for r in covered(requests, keys) for k in r] == keys
    assert elapsed < 10.0
