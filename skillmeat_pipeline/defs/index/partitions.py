import dagster as dg

from skillmeat_pipeline.lib.catalog.source_set import SourceSet, source_set
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.sources import SourceConfig, partition_changes

# One partition per source: the sources file's, and the plugin sources its marketplaces list
# (SPEC §2.1); kept equal to both by `sources_sync_sensor` and `skillmeat-pipeline sources sync`.
marketplace_sources = dg.DynamicPartitionsDefinition(name="marketplace_sources")


def sync_catalog_sources(catalog: Catalog, wanted: SourceSet) -> None:
    """Source rows equal to the set: new and changed ones stored, skipped entries recorded with
    why, and sources gone from the file or from their marketplace marked removed."""
    catalog.upsert_sources(wanted.sources)
    catalog.upsert_skipped_sources(wanted.skipped)
    keys = wanted.row_keys
    catalog.mark_sources_removed(s.key for s in catalog.list_sources() if s.key not in keys)


def planned_partition_changes(
    instance: dg.DagsterInstance, wanted: SourceSet
) -> tuple[list[str], list[str]]:
    """(keys to add, keys to remove) to make the partitions equal the set of sources."""
    existing = marketplace_sources.get_partition_keys(dynamic_partitions_store=instance)
    return partition_changes(wanted.partition_keys, existing)


def sync_sources(
    instance: dg.DagsterInstance, catalog: Catalog, file_sources: list[SourceConfig]
) -> tuple[SourceSet, list[str], list[str]]:
    """Partitions and source rows made equal to the file plus the plugin sources of its indexed
    marketplaces, at once (the CLI and the demo; the sensor asks Dagster through its result).

    Returns the set and the partition keys added and removed.
    """
    wanted = source_set(file_sources, catalog)
    added, removed = planned_partition_changes(instance, wanted)
    sync_catalog_sources(catalog, wanted)
    if added:
        instance.add_dynamic_partitions(marketplace_sources.name, added)
    for key in removed:
        instance.delete_dynamic_partition(marketplace_sources.name, key)
    return wanted, added, removed
