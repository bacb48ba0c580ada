"""The helpers the ops log through, so every message reaches both the Dagster run log and the
`skillmeat_pipeline` Python logger tree exactly once.

Logs: the library (`skillmeat_pipeline.lib.*`) logs structured records to Python `logging`; the ops
show their own messages in the run log with `context.log`. A message the library already wrote is
only mirrored into the run log (`log_to_run`); a message that starts in an op goes to both
(`log_record`). If the Dagster instance captures the Python tree itself (`python_logs:
managed_python_loggers: [skillmeat_pipeline]` in dagster.yaml), the mirror is skipped, so nothing
shows twice. `SKILLMEAT_LOG_FORMAT=json` prints the tree as JSON lines on stderr (see
`lib/observability/logs.configure_logging`).
"""

import logging

import dagster as dg

OPS_LOGGER = logging.getLogger("skillmeat_pipeline.defs.index.assets")
SCAN_LOGGER = "skillmeat_pipeline.lib.scan.pipeline"


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
