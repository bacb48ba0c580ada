"""The code location: assembles the Dagster objects defined under `defs/`."""

import dagster as dg

from skillmeat_pipeline.defs.assets import marketplace_index
from skillmeat_pipeline.defs.resources import (
    CatalogResource,
    FetchersResource,
    SourcesFileResource,
)
from skillmeat_pipeline.defs.sensors import sources_sync_sensor

defs = dg.Definitions(
    assets=[marketplace_index],
    sensors=[sources_sync_sensor],
    resources={
        "catalog": CatalogResource(),
        "sources_file": SourcesFileResource(),
        "fetchers": FetchersResource(),
    },
    # Steps are short and I/O bound: a process per step would cost ~1.2 s each (SPEC §9).
    executor=dg.in_process_executor,
)
