"""Every resource of the code location: the catalog database, the sources file, the fetchers
(libgit2 and the API), telemetry and head polling. Secrets come from the environment through
`dg.EnvVar` fields, resolved when a resource is initialized, never from run config."""

import os
from dataclasses import replace
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr
from typing_extensions import override  # typing.override from Python 3.12

from skillmeat_pipeline.lib.catalog.export import DEFAULT_KEEP, export_dir_from_env
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.addresses import github_url
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.core.sources import (
    SourceConfig,
    SourceEntries,
    load_sources,
    read_sources_file,
)
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
from skillmeat_pipeline.lib.scan.settings import Fetchers, ScanSettings

GITHUB_TOKEN = "GITHUB_TOKEN"
GITHUB_TOKEN_DESCRIPTION = (
    "GitHub token for GitHub sources (REST, raw and git), set from the GITHUB_TOKEN environment "
    "variable; none: unauthenticated (60 REST calls an hour). Never put it in run config."
)


def optional_env_var(name: str) -> str | None:
    """`dg.EnvVar(name)` when the variable is set (non-empty), None otherwise.

    Dagster resolves an `EnvVar` field when the resource is initialized (run time), so the value
    never enters run config or the UI, which show the variable's name. But an `EnvVar` whose
    variable is unset fails the run's (or sensor tick's) config: "You have attempted to fetch
    the environment variable ... which is not set", even on a `str | None = None` field, and
    `EnvVar` takes no default (dagster-io/dagster#16232). The token is optional, so the field
    gets an `EnvVar` only when there is a value to resolve. The code server and every run worker
    load the code location in their own process, so each decides by its own environment; code
    that changes the variable after loading `defs` builds fresh resources (`resource_defs()`).
    """
    return dg.EnvVar(name) if os.environ.get(name) else None


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


class CatalogResource(dg.ConfigurableResource):
    """The catalog database; `SKILLMEAT_INDEX_URL` unless `url` is set (SQLite file by default)."""

    url: str | None = None

    _catalog: Catalog | None = PrivateAttr(default=None)

    @override
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._catalog = Catalog.from_url(self.url) if self.url else Catalog.from_env()
        self._catalog.migrate()

    @override
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
        """Every source; any bad entry is a `SourcesFileError` (for changing partitions)."""
        return load_sources(Path(self.path) if self.path else None)

    def entries(self) -> SourceEntries:
        """The good entries and the problem of each bad one (for runs: a bad entry fails its
        own partition only)."""
        return read_sources_file(Path(self.path) if self.path else None)


class FetchersResource(dg.ConfigurableResource):
    """How trees are fetched. Limits come from the environment (SPEC §4, §6) unless set here.

    `github_token` is set with `dg.EnvVar("GITHUB_TOKEN")` (see `resource_defs`): resolved when
    a run initializes the resource, never stored in run config.
    """

    max_parallel_sources: int = 4
    clone_timeout_seconds: float | None = None
    max_rate_limit_wait_seconds: float = 60.0
    github_token: str | None = Field(default=None, description=GITHUB_TOKEN_DESCRIPTION)

    _fetchers: Fetchers | None = PrivateAttr(default=None)

    def token(self) -> Secret | None:
        return _secret(self.github_token)

    @override
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = ScanSettings.from_env(max_rate_limit_wait_s=self.max_rate_limit_wait_seconds)
        if self.clone_timeout_seconds is not None:
            settings = replace(
                settings, clone=replace(settings.clone, timeout_s=self.clone_timeout_seconds)
            )
        token = self.token()
        self._fetchers = Fetchers(
            github=GitHubClient(
                api_url=github_url("SKILLMEAT_GITHUB_API_URL"),
                raw_url=github_url("SKILLMEAT_GITHUB_RAW_URL"),
                token=token,
            ),
            token=token,
            settings=settings,
        )

    @override
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

    @override
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        configure_logging()
        set_log_context(dagster_run_id=context.run.run_id if context.run else None)
        self._telemetry = self.create_telemetry()

    @override
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
    github_token: str | None = Field(default=None, description=GITHUB_TOKEN_DESCRIPTION)

    def lister(self) -> HeadLister:
        return BatchHeadLister(max_parallel=self.max_parallel)

    def token(self) -> Secret | None:
        return _secret(self.github_token)


class ExportLocationResource(dg.ConfigurableResource):
    """Where `catalog_export` writes its snapshots: `SKILLMEAT_EXPORT_DIR` (default ./exports)
    unless `directory` is set; the newest `keep` snapshots stay."""

    directory: str | None = None
    keep: int = DEFAULT_KEEP

    def path(self) -> Path:
        return Path(self.directory) if self.directory else export_dir_from_env()


def resource_defs() -> dict[str, dg.ConfigurableResource]:
    """Every resource of the code location, built from the environment as it is now."""
    github_token = optional_env_var(GITHUB_TOKEN)
    return {
        "catalog": CatalogResource(),
        "sources_file": SourcesFileResource(),
        "fetchers": FetchersResource(github_token=github_token),
        "telemetry": TelemetryResource(),
        "head_polling": HeadPollingResource(github_token=github_token),
        "export_location": ExportLocationResource(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=resource_defs())
