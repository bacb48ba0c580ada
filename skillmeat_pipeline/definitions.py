"""The code location: every Dagster object under `defs/`, autoloaded, with the executor."""

from pathlib import Path

import dagster as dg

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
    # Steps are short and I/O bound: a process per step would cost ~1.2 s each (SPEC §9).
    dg.Definitions(executor=dg.in_process_executor),
)
