"""The code location as Dagster loads it: loadable, each object once, and equal to a snapshot.

The snapshot (`snapshots/defs.json`) names everything a deployment or a user depends on: asset
and check keys, jobs, schedules (cron, default status), sensors (default status, interval),
resource keys, the partitions definition, and where `force` goes in each job's run config. A
change to any of them fails here; if it is meant, rewrite the file and commit the diff:

    SKILLMEAT_UPDATE_SNAPSHOTS=1 .venv/bin/pytest skillmeat_pipeline_tests/test_defs.py
"""

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from skillmeat_pipeline.definitions import defs
from skillmeat_pipeline.defs.automation.schedules import FORCE_RUN_CONFIG
from skillmeat_pipeline.defs.index.assets import marketplace_index
from skillmeat_pipeline.defs.index.checks import INDEX_CHECK_SPECS
from skillmeat_pipeline.defs.index.jobs import BATCH_JOB_NAME, batch_run_config

SNAPSHOT = Path(__file__).parent / "snapshots" / "defs.json"
ASSET_JOB_NAME = "index_sources"


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def force_run_configs() -> dict[str, dict[str, Any]]:
    """The run config that turns `force` on, per job, as the schedules and sensors send it."""
    return {ASSET_JOB_NAME: FORCE_RUN_CONFIG, BATCH_JOB_NAME: batch_run_config(["a"], force=True)}


def definitions_snapshot() -> dict[str, Any]:
    assets = [*(defs.assets or []), *(defs.asset_checks or [])]
    return {
        "assets": sorted(key.to_user_string() for key in defs.resolve_all_asset_keys()),
        "asset_checks": sorted(
            spec.key.to_user_string()
            for a in assets
            if isinstance(a, dg.AssetsDefinition)
            for spec in a.check_specs
        ),
        "partitions": sorted(
            {
                f"{spec.key.to_user_string()}: {spec.partitions_def.name}"
                for spec in defs.resolve_all_asset_specs()
                if isinstance(spec.partitions_def, dg.DynamicPartitionsDefinition)
            }
        ),
        "jobs": sorted(job.name for job in defs.jobs or []),
        "schedules": {
            s.name: {
                "cron": s.cron_schedule,
                "timezone": s.execution_timezone,
                "default_status": s.default_status.value,
                "job": s.job_name,
            }
            for s in sorted(defs.schedules or [], key=lambda s: s.name)
        },
        "sensors": {
            s.name: {
                "default_status": s.default_status.value,
                "minimum_interval_seconds": s.minimum_interval_seconds,
                # an automation condition sensor targets assets, not a job
                "job": s.job_name if s.has_jobs else None,
            }
            for s in sorted(defs.sensors or [], key=lambda s: s.name)
        },
        "resources": sorted(defs.resources or {}),
        "force_run_config": force_run_configs(),
    }


def test_definitions_match_the_snapshot():
    current = definitions_snapshot()
    if os.environ.get("SKILLMEAT_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        f"the definitions differ from {SNAPSHOT.name}; if that is meant, rerun with "
        "SKILLMEAT_UPDATE_SNAPSHOTS=1 and commit the diff"
    )


def test_every_object_is_collected_once():
    # load_from_defs_folder collects the module-level objects of every module under defs/, so a
    # module that imports another's asset, job or sensor by name would add it a second time.
    names = {
        "assets": [key.to_user_string() for a in defs.assets or [] for key in a.keys],
        "asset_checks": [
            key.to_user_string() for c in defs.asset_checks or [] for key in c.check_keys
        ],
        "jobs": [job.name for job in defs.jobs or []],
        "schedules": [s.name for s in defs.schedules or []],
        "sensors": [s.name for s in defs.sensors or []],
    }
    repeated = {kind: [n for n, c in Counter(v).items() if c > 1] for kind, v in names.items()}
    assert repeated == {kind: [] for kind in names}


@pytest.mark.parametrize("job_name", [ASSET_JOB_NAME, BATCH_JOB_NAME])
def test_force_run_config_is_accepted_by_its_job_and_sets_force(job_name: str):
    job = defs.resolve_job_def(job_name)
    force = force_run_configs()[job_name]
    validated = dg.validate_run_config(job, force)
    # `ops` of the validated config is keyed by op handle: `graph.op` inside a graph asset
    (handle,) = [h for h, op in validated["ops"].items() if (op.get("config") or {}).get("force")]
    expected = {
        ASSET_JOB_NAME: "marketplace_index.resolve_heads",
        BATCH_JOB_NAME: "resolve_batch_heads",
    }
    assert handle == expected[job_name]
    # the other job's path is no path of this one: a config sent to the wrong job fails
    (other,) = [cfg for name, cfg in force_run_configs().items() if name != job_name]
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, other)


def test_without_force_the_jobs_do_not_force():
    validated = dg.validate_run_config(defs.resolve_job_def(ASSET_JOB_NAME), {})
    assert validated["ops"]["marketplace_index.resolve_heads"]["config"] == {"force": False}
    batch = dg.validate_run_config(defs.resolve_job_def(BATCH_JOB_NAME), batch_run_config(["a"]))
    assert batch["ops"]["resolve_batch_heads"]["config"] == {"sources": ["a"], "force": False}


@pytest.mark.parametrize("spec", INDEX_CHECK_SPECS, ids=lambda spec: spec.name)
def test_every_check_has_its_own_op_output(spec: dg.AssetCheckSpec):
    # Runs that select the checks (every UI backfill does) need each one mapped to an output:
    # the asset's graph output for the check comes from its own output of `write_index_rows`.
    graph_output = marketplace_index.get_output_name_for_asset_check_key(spec.key)
    mappings = {m.graph_output_name: m for m in marketplace_index.node_def.output_mappings}
    mapped = mappings[graph_output]
    assert (mapped.mapped_node_name, mapped.mapped_node_output_name) == (
        "write_index_rows",
        spec.get_python_identifier(),
    )
    others = {
        marketplace_index.get_output_name_for_asset_check_key(s.key)
        for s in INDEX_CHECK_SPECS
        if s is not spec
    }
    assert graph_output not in others
