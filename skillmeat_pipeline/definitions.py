"""The code location: assembles the Dagster objects defined under `defs/`."""

import dagster as dg

from skillmeat_pipeline.defs.assets import marketplace_index
from skillmeat_pipeline.defs.jobs import index_source_batch_job, index_sources_job
from skillmeat_pipeline.defs.resources import (
    CatalogResource,
    FetchersResource,
    SourcesFileResource,
)
from skillmeat_pipeline.defs.schedules import nightly_reindex, weekly_forced_reindex
from skillmeat_pipeline.defs.sensors import (
    HeadPollingResource,
    push_events_sensor,
    source_heads_sensor,
    sources_sync_sensor,
)
from skillmeat_pipeline.defs.telemetry import TelemetryResource

defs = dg.Definitions(
    assets=[marketplace_index],
    jobs=[index_sources_job, index_source_batch_job],
    sensors=[sources_sync_sensor, source_heads_sensor, push_events_sensor],
    schedules=[nightly_reindex, weekly_forced_reindex],
    resources={
        "catalog": CatalogResource(),
        "sources_file": SourcesFileResource(),
        "fetchers": FetchersResource(),
        "telemetry": TelemetryResource(),
        "head_polling": HeadPollingResource(),
    },
    # Steps are short and I/O bound: a process per step would cost ~1.2 s each (SPEC §9).
    executor=dg.in_process_executor,
)
