"""JSON (or text) log lines of the `skillmeat_pipeline` logger tree, with a per-process context.

`configure_logging` installs one handler on the tree; `set_log_context` adds fields (the Dagster
run id of a run worker) to every JSON line. Secrets of the environment (`core.secrets`) are
redacted from every line, JSON or text, and control characters (which messages quoting repository
paths may hold) are escaped with `core.untrusted.printable`: a line stays one line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from skillmeat_pipeline.lib.core.secrets import redact, secrets_from_env
from skillmeat_pipeline.lib.core.untrusted import printable

LOGGER_TREE = "skillmeat_pipeline"
_log_context: dict[str, str] = {}
_log_context_lock = threading.Lock()
_HANDLER_MARK = "_skillmeat_handler"


def set_log_context(**fields: str | None) -> None:
    """Fields added to every JSON line of this process (the Dagster run id of a run worker)."""
    with _log_context_lock:
        _log_context.clear()
        _log_context.update({k: v for k, v in fields.items() if v})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's structured fields.

    `extra={"record": {...}}` fields are merged in at the top level (the SPEC §4 strategy record:
    `source`, `selected_strategy`, `reason`, ...). Records that Dagster hands to its handlers carry
    their run, step and op. Secrets from the environment are replaced by `***`.
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": printable(record.getMessage()),
        }
        structured = getattr(record, "record", None)
        if isinstance(structured, Mapping):
            for key, value in structured.items():
                payload.setdefault(printable(str(key)), _printable_value(value))
        dagster_meta = getattr(record, "dagster_meta", None)
        if isinstance(dagster_meta, Mapping):
            for key in ("run_id", "job_name", "step_key", "op_name", "resource_name"):
                if dagster_meta.get(key):
                    payload.setdefault(f"dagster_{key}", dagster_meta[key])
            if dagster_meta.get("orig_message"):
                payload["message"] = printable(str(dagster_meta["orig_message"]))
        with _log_context_lock:
            for key, value in _log_context.items():
                payload.setdefault(key, value)
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            payload["trace_id"] = trace.format_trace_id(span_context.trace_id)
            payload["span_id"] = trace.format_span_id(span_context.span_id)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str, ensure_ascii=False), secrets_from_env())


def _printable_value(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list | tuple):
        return [_printable_value(v) for v in value]
    if isinstance(value, Mapping):
        return {printable(str(k)): _printable_value(v) for k, v in value.items()}
    return value


class _TextFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        # a traceback keeps its lines; what it quotes cannot add any
        return "\n".join(printable(line) for line in super().formatException(ei).split("\n"))

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), secrets_from_env())


def configure_logging(
    log_format: str | None = None, *, level: str | int | None = None, stream: TextIO | None = None
) -> logging.Handler | None:
    """Send the `skillmeat_pipeline` logger tree to `stream` (stderr), as JSON or text.

    `log_format` defaults to `SKILLMEAT_LOG_FORMAT` (`json` or `text`) and `level` to
    `SKILLMEAT_LOG_LEVEL` (INFO). Without either, logging is left as the host process set it up.
    Calling it again replaces the handler it installed before, so it is safe once per run.
    """
    log_format = (log_format or os.environ.get("SKILLMEAT_LOG_FORMAT") or "").strip().lower()
    if not log_format:
        return None
    if log_format not in ("json", "text"):
        raise ValueError(f"log format must be json or text, got {log_format!r}")
    tree = logging.getLogger(LOGGER_TREE)
    for old in [h for h in tree.handlers if getattr(h, _HANDLER_MARK, False)]:
        tree.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    setattr(handler, _HANDLER_MARK, True)
    tree.addHandler(handler)
    level = level or os.environ.get("SKILLMEAT_LOG_LEVEL") or logging.INFO
    tree.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
