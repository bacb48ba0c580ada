"""Every source the pipeline indexes: the sources file and the plugin sources of its marketplaces.

Plugin sources (SPEC §2.1) are derived, never declared: from each file source's marketplace
records as its last good scan stored them. A marketplace that is indexed again, loses an entry
or leaves the sources file changes the set at the next sync, with nothing else to keep in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.plugin_sources import (
    PluginSourceConfig,
    SkippedEntry,
    plugin_sources,
)
from skillmeat_pipeline.lib.core.sources import SourceConfig


@dataclass(frozen=True, slots=True)
class SourceSet:
    """The sources file's sources, then the plugin sources and skipped entries they list."""

    file: tuple[SourceConfig, ...]
    plugins: tuple[PluginSourceConfig, ...] = ()
    skipped: tuple[SkippedEntry, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def sources(self) -> list[SourceConfig]:
        """Every source with a partition: file sources in file order, then plugin sources."""
        return [*self.file, *self.plugins]

    def by_key(self) -> dict[str, SourceConfig]:
        return {source.key: source for source in self.sources}

    @property
    def partition_keys(self) -> list[str]:
        return [source.key for source in self.sources]

    @property
    def row_keys(self) -> set[str]:
        """Every key with a live source row (skipped entries have a row and no partition)."""
        return {*self.partition_keys, *(entry.key for entry in self.skipped)}


def repository_order(plugins: Sequence[PluginSourceConfig]) -> list[PluginSourceConfig]:
    """Plugin sources with those of one repository commit side by side (a stable sort).

    New partitions are appended in this order, so a run over a range of them finds the entries
    that share a repository in the same batch and fetches that repository once.
    """
    return sorted(plugins, key=lambda p: ((p.github or p.url).lower(), p.pinned_commit or ""))


def source_set(file_sources: Sequence[SourceConfig], catalog: Catalog) -> SourceSet:
    """The file's sources plus the plugin sources their stored marketplace records list.

    A plugin source whose key a file source already has is left out, with a problem named.
    """
    keys = {source.key for source in file_sources}
    records = catalog.marketplace_records([source.key for source in file_sources])
    plugins: list[PluginSourceConfig] = []
    skipped: list[SkippedEntry] = []
    problems: list[str] = []
    for source in file_sources:
        marketplace = records.get(source.key)
        if not marketplace:
            continue
        found = plugin_sources(source, marketplace)
        problems += [f"marketplace {source.key}: {problem}" for problem in found.problems]
        for plugin in found.sources:
            if plugin.key in keys:
                problems.append(
                    f"marketplace {source.key}: plugin source {plugin.key} is also in the sources "
                    "file; the file's source is indexed"
                )
                continue
            keys.add(plugin.key)
            plugins.append(plugin)
        skipped += [entry for entry in found.skipped if entry.key not in keys]
    ordered = tuple(repository_order(plugins))
    return SourceSet(tuple(file_sources), ordered, tuple(skipped), tuple(problems))
