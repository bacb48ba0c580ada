"""The `skillmeat_pipeline` logger tree, shown in the Dagster run log while an op runs.

Every fact is logged once, as a structured Python record, where it happens (mostly in the steps of
`lib/scan/`; the ops log their own with `logger`). While an op runs, a handler copies the
tree's records into the run log, so a user sees them in the UI. When the instance captures the tree
itself (`python_logs: managed_python_loggers: [skillmeat_pipeline]` in dagster.yaml), the handler is
left out and nothing shows twice. `SKILLMEAT_LOG_FORMAT=json` prints the tree as JSON lines on
stderr (`lib/observability`).
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from skillmeat_pipeline.lib.core.untrusted import printable

LOGGER_TREE = "skillmeat_pipeline"


class _RunLogHandler(logging.Handler):
    def __init__(self, context: dg.OpExecutionContext) -> None:
        super().__init__(logging.INFO)
        self._context = context

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # messages quote repository paths: never a raw control character in the run log
            self._context.log.log(record.levelno, printable(record.getMessage()))
        except Exception:  # a run log that cannot take a line must not fail the scan
            self.handleError(record)


def _captured_by_dagster(context: dg.OpExecutionContext) -> bool:
    return any(
        name == "root" or name == LOGGER_TREE or LOGGER_TREE.startswith(name + ".")
        for name in context.instance.managed_python_loggers
    )


@contextmanager
def tree_in_run_log(context: dg.OpExecutionContext) -> Iterator[None]:
    """Copy the tree's INFO and higher records into the op's run log for the duration."""
    if _captured_by_dagster(context):
        yield
        return
    tree = logging.getLogger(LOGGER_TREE)
    handler = _RunLogHandler(context)
    level = tree.level
    if not tree.isEnabledFor(logging.INFO):
        tree.setLevel(logging.INFO)
    tree.addHandler(handler)
    try:
        yield
    finally:
        tree.removeHandler(handler)
        tree.setLevel(level)
