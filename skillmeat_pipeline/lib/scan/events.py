"""The structured log records of the scan steps: one message and the fields the run log shows.

Each fact a step meets is logged once, where it happens, on that step module's logger (all on the
`skillmeat_pipeline` logger tree, which the Dagster layer forwards to the run log).
"""

from __future__ import annotations

import logging
from typing import Any

from skillmeat_pipeline.lib.core.untrusted import printable

FALLBACK_NEXT = "falling back to the GitHub API"
FAILURE_NEXT = "the partition fails and its last good rows stay"


def log_event(
    logger: logging.Logger, level: int, message: str, *, source: str, event: str, **fields: Any
) -> None:
    """`message` on `logger` with the record `{source, event, **fields}` attached."""
    # messages quote paths and errors that come from repositories: never raw control characters
    logger.log(
        level,
        printable(message),
        extra={"record": {"source": source, "event": event, **fields}},
        stacklevel=2,
    )
