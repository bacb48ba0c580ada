"""Every resource of the code location: the catalog database, the sources file, the fetchers
(libgit2 and the API), telemetry and head polling. Secrets come from the environment at run time,
never from run config."""

from dataclasses import replace
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.core.sources import SourceConfig, load_sources
from skillmeat_pipeline.lib.fetch.git.heads import (
    DEFAULT_MAX_PARALLEL,
    DEFAULT_PAGE_SIZE,
    DEFAULT_RETRY_AFTER_S,
    DEFAULT_TICK_BUDGET_S,
    BatchHeadLister,
    HeadLister,
)
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.observability.logs import configure_logging, set_log_context
from skillmeat_pipeline.lib.observability.telemetry import Telemetry
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
            token=Secret.from_env("GITHUB_TOKEN"),
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


class TelemetryResource(dg.ConfigurableResource):
    """OpenTelemetry for a run: one trace per source scan, the scan metrics (SPEC §7).

    Exporters come from the standard `OTEL_*` environment variables (OTLP over HTTP when
    `OTEL_EXPORTER_OTLP_ENDPOINT` or a per-signal endpoint is set, nothing otherwise;
    `OTEL_SDK_DISABLED=true` turns everything off). Run workers are short-lived, so spans and
    metrics still queued are exported when the run ends (`teardown_after_execution`).
    """

    service_name: str | None = None  # default: OTEL_SERVICE_NAME, else skillmeat-pipeline
    flush_timeout_seconds: float = 30.0

    _telemetry: Telemetry | None = PrivateAttr(default=None)

    def create_telemetry(self) -> Telemetry:
        """The run's `Telemetry`; tests override this to collect in memory."""
        return Telemetry.from_env(service_name=self.service_name)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        configure_logging()
        set_log_context(dagster_run_id=context.run.run_id if context.run else None)
        self._telemetry = self.create_telemetry()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        telemetry, self._telemetry = self._telemetry, None
        flushed = telemetry is None or telemetry.close(self.flush_timeout_seconds)
        if not flushed and context.log is not None:
            context.log.warning(
                f"telemetry: spans or metrics of this run were still being exported after "
                f"{self.flush_timeout_seconds:g} s and may be lost; check that the OTLP endpoint "
                "(OTEL_EXPORTER_OTLP_ENDPOINT) is reachable"
            )
        set_log_context()

    @property
    def telemetry(self) -> Telemetry:
        if self._telemetry is None:
            raise RuntimeError("TelemetryResource is used before Dagster set it up")
        return self._telemetry


class HeadPollingResource(dg.ConfigurableResource):
    """How `source_heads_sensor` polls: a page of sources a tick, within a time budget.

    A tick must end within Dagster's 60 s sensor limit; the budget bounds the lookups, the rest
    of a tick (sources file, partitions, catalog) takes well under a second at 5,000 sources.
    """

    page_size: int = DEFAULT_PAGE_SIZE
    tick_budget_seconds: float = DEFAULT_TICK_BUDGET_S
    max_parallel: int = DEFAULT_MAX_PARALLEL
    retry_after_seconds: float = DEFAULT_RETRY_AFTER_S

    def lister(self) -> HeadLister:
        return BatchHeadLister(max_parallel=self.max_parallel)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "catalog": CatalogResource(),
            "sources_file": SourcesFileResource(),
            "fetchers": FetchersResource(),
            "telemetry": TelemetryResource(),
            "head_polling": HeadPollingResource(),
        }
    )
