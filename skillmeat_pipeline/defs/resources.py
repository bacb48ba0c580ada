"""Resources: the catalog database, the sources file, and the fetchers (libgit2 and the API)."""

import os
from dataclasses import replace
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.sources import SourceConfig, load_sources
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.scan.pipeline import Fetchers, ScanSettings


class CatalogResource(dg.ConfigurableResource):
    """The catalog database; `SKILLMEAT_INDEX_URL` unless `url` is set (SQLite file by default)."""

    url: str | None = None

    _catalog: Catalog | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._catalog = Catalog.from_url(self.url) if self.url else Catalog.from_env()
        self._catalog.migrate()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._catalog is not None:
            self._catalog.dispose()

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            raise RuntimeError("CatalogResource is used before Dagster set it up")
        return self._catalog


class SourcesFileResource(dg.ConfigurableResource):
    """The sources file; `SKILLMEAT_SOURCES_FILE` (default ./sources.yaml) unless `path` is set."""

    path: str | None = None

    def load(self) -> list[SourceConfig]:
        return load_sources(Path(self.path) if self.path else None)


class FetchersResource(dg.ConfigurableResource):
    """How trees are fetched. Limits come from the environment (SPEC §4, §6) unless set here.

    The token is read from `GITHUB_TOKEN` at run time and never stored in run config.
    """

    max_parallel_sources: int = 4
    clone_timeout_seconds: float | None = None
    max_rate_limit_wait_seconds: float = 60.0

    _fetchers: Fetchers | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = ScanSettings.from_env(max_rate_limit_wait_s=self.max_rate_limit_wait_seconds)
        if self.clone_timeout_seconds is not None:
            settings = replace(
                settings, clone=replace(settings.clone, timeout_s=self.clone_timeout_seconds)
            )
        self._fetchers = Fetchers(
            github=GitHubClient.from_env(),
            token=os.environ.get("GITHUB_TOKEN") or None,
            settings=settings,
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._fetchers is not None:
            self._fetchers.github.close()

    @property
    def fetchers(self) -> Fetchers:
        if self._fetchers is None:
            raise RuntimeError("FetchersResource is used before Dagster set it up")
        return self._fetchers
