"""The code location: every Dagster object under `defs/`, autoloaded, with the executor.

`SKILLMEAT_EXECUTOR` chooses the executor: `in_process` (default) or `celery`, where each step is a
Celery task that a `dagster-celery` worker on any machine runs (README "More machines: Celery
workers"). Every process that loads the code location (code server, run workers, Celery workers)
must see the same value: it also decides where step outputs are stored.
"""

import os
from pathlib import Path
from typing import Any

import dagster as dg

EXECUTOR_ENV = "SKILLMEAT_EXECUTOR"
CELERY_BROKER_ENV = "SKILLMEAT_CELERY_BROKER_URL"
CELERY_BACKEND_ENV = "SKILLMEAT_CELERY_BACKEND_URL"
# a folder every Celery worker mounts (NFS, say): the pickled lists of plans and outcomes that
# one step hands to the next, read by whichever worker runs the next step
STEP_STORAGE_ENV = "SKILLMEAT_STEP_STORAGE_DIR"

# What the run side tells Celery; deploy/celery.yaml gives the workers the same (a test compares).
# A step's task is acknowledged when it ends, not when a worker takes it, so the task of a worker
# that died (its connection to the broker closes) goes back to the queue for another worker.
CELERY_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    # each worker sweeps the clone directories its killed predecessors left on its machine
    "imports": ["skillmeat_pipeline.celery_worker"],
}


def execution() -> dg.Definitions:
    """The executor (and, for Celery, the shared step storage) that `SKILLMEAT_EXECUTOR` names."""
    chosen = os.environ.get(EXECUTOR_ENV) or "in_process"
    if chosen == "in_process":
        # Steps are short and I/O bound: a process per step would cost ~1.2 s each (SPEC §9).
        return dg.Definitions(executor=dg.in_process_executor)
    if chosen != "celery":
        raise ValueError(f"{EXECUTOR_ENV} must be in_process or celery, not {chosen!r}")
    from dagster_celery import celery_executor  # the [celery] extra: only this mode needs it

    return dg.Definitions(
        executor=celery_executor.configured(
            {
                "broker": {"env": CELERY_BROKER_ENV},
                "backend": {"env": CELERY_BACKEND_ENV},
                "config_source": CELERY_SETTINGS,
            }
        ),
        resources={"io_manager": dg.FilesystemIOManager(base_dir=dg.EnvVar(STEP_STORAGE_ENV))},
    )


defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
    execution(),
)
