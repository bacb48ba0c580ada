import dagster as dg

from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.sources import SourceConfig, partition_changes

# One partition per marketplace source; keys come from the sources file (see sensors.py).
marketplace_sources = dg.DynamicPartitionsDefinition(name="marketplace_sources")


def sync_catalog_sources(catalog: Catalog, configured: list[SourceConfig]) -> None:
    """Source rows equal to the file: new and changed ones stored, dropped ones marked removed."""
    catalog.upsert_sources(configured)
    keys = {source.key for source in configured}
    catalog.mark_sources_removed(s.key for s in catalog.list_sources() if s.key not in keys)


def planned_partition_changes(
    instance: dg.DagsterInstance, configured: list[SourceConfig]
) -> tuple[list[str], list[str]]:
    """(keys to add, keys to remove) to make the partitions equal the sources file."""
    existing = marketplace_sources.get_partition_keys(dynamic_partitions_store=instance)
    return partition_changes([source.key for source in configured], existing)
