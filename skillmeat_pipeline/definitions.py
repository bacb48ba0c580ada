"""The code location: assembles the Dagster objects defined under `defs/`."""

import dagster as dg

defs = dg.Definitions(executor=dg.in_process_executor)
