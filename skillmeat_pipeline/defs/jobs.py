import dagster as dg

from skillmeat_pipeline.defs.assets import marketplace_index

index_sources_job = dg.define_asset_job(
    "index_sources",
    selection=[marketplace_index],
    description="Index marketplace sources (the target of sensors and schedules).",
)
