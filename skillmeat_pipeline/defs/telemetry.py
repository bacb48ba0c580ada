"""The telemetry resource (spans and metrics of each run, flushed before the run ends) and the
helpers the ops log through, so every message reaches both the Dagster run log and the
`skillmeat_pipeline` Python logger tree exactly once.

Logs: the library (`skillmeat_pipeline.lib.*`) logs structured records to Python `logging`; the ops
show their own messages in the run log with `context.log`. A message the library already wrote is
only mirrored into the run log (`log_to_run`); a message that starts in an op goes to both
(`log_record`). If the Dagster instance captures the Python tree itself (`python_logs:
managed_python_loggers: [skillmeat_pipeline]` in dagster.yaml), the mirror is skipped, so nothing
shows twice. `SKILLMEAT_LOG_FORMAT=json` prints the tree as JSON lines on stderr (see
`lib/telemetry.configure_logging`).
"""

import logging

import dagster as dg
from pydantic import PrivateAttr

from skillmeat_pipeline.lib.observability.telemetry import (
    Telemetry,
    configure_logging,
    set_log_context,
)

OPS_LOGGER = logging.getLogger("skillmeat_pipeline.defs.assets")
SCAN_LOGGER = "skillmeat_pipeline.lib.scan.pipeline"


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
        if telemetry is not None and not telemetry.close(self.flush_timeout_seconds):
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


def captured_by_dagster(context: dg.OpExecutionContext, logger_name: str, level: int) -> bool:
    """Whether the instance already copies this Python record into the run log.

    It does for loggers under `managed_python_loggers` whose level lets the record through (set
    `python_log_level: INFO` too, or INFO records never get that far).
    """
    managed = context.instance.managed_python_loggers
    return logging.getLogger(logger_name).isEnabledFor(level) and any(
        name == "root" or logger_name == name or logger_name.startswith(name + ".")
        for name in managed
    )


def log_record(
    context: dg.OpExecutionContext,
    level: int,
    message: str,
    *,
    logger: logging.Logger = OPS_LOGGER,
    **record: object,
) -> None:
    """A message that starts in an op: a structured Python record, and a line in the run log."""
    logger.log(level, message, extra={"record": record}, stacklevel=2)
    if not captured_by_dagster(context, logger.name, level):
        context.log.log(level, message)


def log_to_run(
    context: dg.OpExecutionContext, level: int, message: str, *, origin: str = SCAN_LOGGER
) -> None:
    """A message whose structured record the library already logged to `origin`: the run log."""
    if not captured_by_dagster(context, origin, level):
        context.log.log(level, message)
