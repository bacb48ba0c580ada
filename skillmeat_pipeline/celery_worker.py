"""Imported by every `dagster-celery` worker at start (`imports` in deploy/celery.yaml).

A worker killed mid-clone (SIGKILL, the OOM killer) leaves its clone directory behind; the run's
step is retried on another worker, and nothing else would remove the directory. Clones go to the
temp dir (`CloneSettings.from_env` sets no `clone_dir`), so a worker that starts on that machine
removes those whose process is gone before it takes a task.
"""

import tempfile
from pathlib import Path
from typing import Any

from celery.signals import worker_init

from skillmeat_pipeline.lib.fetch.git.sweep import sweep_stale_clones


@worker_init.connect
def sweep_clone_directories(**_kwargs: Any) -> None:
    sweep_stale_clones(Path(tempfile.gettempdir()))
