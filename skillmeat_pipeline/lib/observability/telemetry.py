"""Observability of scans (SPEC §7): OpenTelemetry spans and metrics, JSON logs, `/metrics`.

**Spans.** A source's steps run in different ops and threads (possibly processes), so no live span
can follow it. Instead `lib/scan.py` records each step's wall-clock start and end (`Phase`) on the
source's `ScanCost`, which travels with it from op to op, and `Telemetry.record_scan` emits the
whole tree when the rows are written, with explicit start and end times:

    skillmeat.scan                      one trace per source and run
      skillmeat.resolve_head            head commit over the git protocol
      skillmeat.strategy_selection
      skillmeat.clone                   one per attempt
      skillmeat.extraction              (on the clone path)
      skillmeat.api_fallback            the GitHub API path, whether chosen or a fallback
        skillmeat.extraction            (raw reads happen while extracting)
      skillmeat.db_write

**Metrics.** Histograms `skillmeat_clone_duration_seconds`, `skillmeat_extraction_duration_seconds`,
`skillmeat_scan_total_duration_seconds` (labels `strategy`, `artifact_count_bucket`) and the counter
`skillmeat_github_api_calls_total` (labels `endpoint` rest|raw, `status_class` 2xx..5xx|error).
Run workers are short-lived processes, so nothing is served from them: they push over OTLP/HTTP
with delta temporality when a run ends, to an OpenTelemetry Collector or to `MetricsServer`
(`skillmeat-pipeline metrics-server`), which adds up what every worker pushed and serves it to
Prometheus at `/metrics`.

**Exporters** follow the standard variables: `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER` /
`OTEL_METRICS_EXPORTER` (`otlp`, `console`, `none`), `OTEL_EXPORTER_OTLP_ENDPOINT` and the
per-signal `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT`, `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_METRIC_EXPORT_INTERVAL`. OTLP is used only
where an endpoint is set: nothing is exported by default.

**Secrets** (`GITHUB_TOKEN`) are scrubbed from every span attribute, span event, log line and label
value, on top of the fetchers never putting them in a message.

No Dagster import here: `defs/telemetry.py` wraps `Telemetry` in a resource.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import sys
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, TextIO

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from skillmeat_pipeline.lib.core.strategy import Strategy
from skillmeat_pipeline.lib.scan.cost import Phase
from skillmeat_pipeline.lib.scan.outcomes import Failed, Scanned, SourceOutcome

if TYPE_CHECKING:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "skillmeat-pipeline"
INSTRUMENTATION_SCOPE = "skillmeat_pipeline"
SECRET_VARIABLES = ("GITHUB_TOKEN",)
REDACTED = "***"

# -- names -----------------------------------------------------------------------------------------

SPAN_SCAN = "skillmeat.scan"
PHASE_SPAN_NAMES = {
    "resolve": "skillmeat.resolve_head",
    "select": "skillmeat.strategy_selection",
    "clone": "skillmeat.clone",
    "extract": "skillmeat.extraction",
    "api": "skillmeat.api_fallback",
    "write": "skillmeat.db_write",
}

CLONE_DURATION = "skillmeat_clone_duration_seconds"
EXTRACTION_DURATION = "skillmeat_extraction_duration_seconds"
SCAN_DURATION = "skillmeat_scan_total_duration_seconds"
API_CALLS = "skillmeat_github_api_calls_total"
# seconds; a clone takes 0.1 s to the 300 s timeout, an extraction milliseconds to a minute
DURATION_BUCKETS_S = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
)
ARTIFACT_COUNT_BUCKETS = ((5, "0-5"), (20, "5-20"), (50, "20-50"))


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    kind: str  # "histogram" or "counter"
    description: str
    labels: tuple[str, ...]


METRICS = (
    MetricInfo(
        CLONE_DURATION,
        "histogram",
        "Time to clone a source (bare, depth 1), by strategy and artifact count.",
        ("strategy", "artifact_count_bucket"),
    ),
    MetricInfo(
        EXTRACTION_DURATION,
        "histogram",
        "Time to detect artifacts and extract their manifests (on the API path: with raw reads).",
        ("strategy", "artifact_count_bucket"),
    ),
    MetricInfo(
        SCAN_DURATION,
        "histogram",
        "Time from a scanned source's head lookup until its rows are written.",
        ("strategy", "artifact_count_bucket"),
    ),
    MetricInfo(
        API_CALLS,
        "counter",
        "Requests sent to GitHub: REST calls and raw-content reads, by status class.",
        ("endpoint", "status_class"),
    ),
)


def artifact_count_bucket(count: int) -> str:
    """`0-5`, `5-20`, `20-50` or `50+`: lower bound included, upper excluded (5 is `5-20`)."""
    for upper, label in ARTIFACT_COUNT_BUCKETS:
        if count < upper:
            return label
    return "50+"


# -- secrets ---------------------------------------------------------------------------------------


def secrets_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    env = os.environ if environ is None else environ
    # a one-character "secret" would redact half of every line
    return tuple(v for v in (env.get(n, "") for n in SECRET_VARIABLES) if len(v) >= 4)


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


# -- telemetry of scans ----------------------------------------------------------------------------

AttributeValue = str | int | float | bool


class Telemetry:
    """Spans and metrics of source scans for one run (or one process).

    Built from the environment by `from_env`, or around given providers (tests). `close()` flushes
    and shuts down the providers it built itself.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        owns_providers: bool = True,
        secrets: Iterable[str] | None = None,
        trace_url_template: str | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._owns_providers = owns_providers
        self._secrets = tuple(secrets) if secrets is not None else secrets_from_env()
        self.trace_url_template = trace_url_template
        self._tracer = (
            tracer_provider.get_tracer(INSTRUMENTATION_SCOPE) if tracer_provider else None
        )
        self._histograms: dict[str, Any] = {}
        self._api_calls: Any = None
        if meter_provider is not None:
            meter = meter_provider.get_meter(INSTRUMENTATION_SCOPE)
            for info in METRICS:
                if info.kind == "histogram":
                    self._histograms[info.name] = meter.create_histogram(
                        info.name,
                        unit="s",
                        description=info.description,
                        explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
                    )
                else:
                    self._api_calls = meter.create_counter(
                        info.name, unit="{request}", description=info.description
                    )

    @classmethod
    def disabled(cls) -> Telemetry:
        return cls()

    @classmethod
    def for_test(
        cls,
        *,
        span_processors: Sequence[SpanProcessor] = (),
        metric_readers: Sequence[MetricReader] = (),
        secrets: Iterable[str] | None = None,
    ) -> Telemetry:
        """Providers around the given processors and readers, left open by `close()`.

        The caller keeps reading what they collected after a run ends.
        """
        tracer_provider = None
        if span_processors:
            tracer_provider = TracerProvider(resource=Resource.create({}))
            for processor in span_processors:
                tracer_provider.add_span_processor(processor)
        meter_provider = (
            MeterProvider(metric_readers=list(metric_readers), resource=Resource.create({}))
            if metric_readers
            else None
        )
        return cls(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            owns_providers=False,
            secrets=secrets,
        )

    @classmethod
    def from_env(cls, *, service_name: str | None = None) -> Telemetry:
        """Exporters as the `OTEL_*` variables say; nothing is exported without an endpoint."""
        env = os.environ
        secrets = secrets_from_env(env)
        template = env.get("SKILLMEAT_TRACE_URL_TEMPLATE") or None
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls(secrets=secrets)
        span_exporters = _span_exporters(env)
        metric_exporters = _metric_exporters(env)
        if not span_exporters and not metric_exporters:
            return cls(secrets=secrets)
        resource = _resource(env, service_name)
        tracer_provider = None
        if span_exporters:
            tracer_provider = TracerProvider(resource=resource)
            for exporter in span_exporters:
                tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        meter_provider = None
        if metric_exporters:
            readers = [PeriodicExportingMetricReader(e) for e in metric_exporters]
            meter_provider = MeterProvider(metric_readers=readers, resource=resource)
        return cls(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            secrets=secrets,
            trace_url_template=template,
        )

    @property
    def tracing(self) -> bool:
        return self._tracer is not None

    @property
    def metering(self) -> bool:
        return self._meter_provider is not None

    def trace_url(self, trace_id: str) -> str | None:
        """Where a user opens the trace (`SKILLMEAT_TRACE_URL_TEMPLATE`, `{trace_id}` filled in)."""
        if not self.trace_url_template:
            return None
        return self.trace_url_template.replace("{trace_id}", trace_id)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Export finished spans and the metrics so far; False when that did not end in time."""
        deadline = time.monotonic() + timeout_s
        done = True
        # an exporter that cannot reach its endpoint must never fail the run it observes
        if self._tracer_provider is not None:
            try:
                done = self._tracer_provider.force_flush(round(timeout_s * 1000)) and done
            except Exception as exc:
                logger.warning("telemetry: exporting spans failed: %s", exc)
                done = False
        if self._meter_provider is not None:
            left = max(0.0, deadline - time.monotonic())
            try:
                done = self._meter_provider.force_flush(round(left * 1000)) and done
            except Exception as exc:
                logger.warning("telemetry: exporting metrics failed: %s", exc)
                done = False
        return done

    def close(self, timeout_s: float = 30.0) -> bool:
        """Flush, then shut down the providers this object built (tests keep theirs open)."""
        done = self.flush(timeout_s)
        if self._owns_providers:
            try:
                if self._tracer_provider is not None:
                    self._tracer_provider.shutdown()
                if self._meter_provider is not None:
                    self._meter_provider.shutdown(timeout_millis=1_000)
            except Exception as exc:
                logger.warning("telemetry: shutting the exporters down failed: %s", exc)
                done = False
        return done

    # -- one source -------------------------------------------------------------------------------

    def record_scan(self, result: SourceOutcome, *, run_id: str | None = None) -> str | None:
        """Metrics and the span tree of one source's scan; its trace id (hex) when sampled."""
        if self._meter_provider is not None:
            self._record_metrics(result)
        if self._tracer is None:
            return None
        return self._emit_trace(result, run_id)

    def _record_metrics(self, result: SourceOutcome) -> None:
        cost = result.cost
        for (endpoint, status_class), count in cost.responses.items():
            self._api_calls.add(count, {"endpoint": endpoint, "status_class": status_class})
        if not isinstance(result, Scanned):
            return  # a current source was not scanned; a failed one has no artifact count
        labels = {
            "strategy": result.strategy.value if result.strategy else "none",
            "artifact_count_bucket": artifact_count_bucket(result.artifact_count),
        }
        # the numbers of the partition's clone_ms and extract_ms metadata
        if result.strategy is not Strategy.API and cost.clone_ms:
            self._histograms[CLONE_DURATION].record(cost.clone_ms / 1000, labels)
        self._histograms[EXTRACTION_DURATION].record(cost.extract_ms / 1000, labels)
        self._histograms[SCAN_DURATION].record(result.cost.busy_ns() / 1e9, labels)

    def _emit_trace(self, result: SourceOutcome, run_id: str | None) -> str | None:
        assert self._tracer is not None
        cost = result.cost
        strategy = result.strategy.value if result.strategy else "none"
        common: dict[str, AttributeValue] = {
            "dagster.partition_key": result.source_key,
            "strategy": strategy,
        }
        if run_id:
            common["dagster.run_id"] = run_id
        start_ns = min((p.start_ns for p in cost.phases), default=time.time_ns())
        end_ns = start_ns + _total_ns(result)
        root_attributes: dict[str, Any] = {
            **common,
            "scan_status": result.status.value,
            "artifact_count": result.artifact_count,
            "patterns_count": 0 if isinstance(result, Failed) else len(result.target.patterns),
            "api_calls": cost.api_calls,
            "raw_reads": cost.raw_reads,
            "bytes_fetched": cost.bytes_fetched,
            "commit_sha": result.commit_sha or "",
            "duration_ms": round((end_ns - start_ns) / 1e6, 3),
        }
        if result.fallback_reason:
            root_attributes["fallback_reason"] = result.fallback_reason
        root = self._tracer.start_span(
            SPAN_SCAN,
            # a root of its own, whatever span the calling thread has open
            context=Context(),
            kind=SpanKind.INTERNAL,
            attributes=self._clean(root_attributes),
            start_time=start_ns,
        )
        if isinstance(result, Failed):
            self._fail(root, result.error or "failed", end_ns)
        spans: list[Span] = []
        for phase in cost.phases:
            parent = spans[phase.parent] if phase.parent is not None else root
            spans.append(self._phase_span(phase, parent, common, result))
        for phase, span in zip(reversed(cost.phases), reversed(spans), strict=True):
            span.end(end_time=phase.end_ns)
        root.end(end_time=end_ns)
        context = root.get_span_context()
        if not (context.is_valid and context.trace_flags.sampled):
            return None
        return trace.format_trace_id(context.trace_id)

    def _phase_span(
        self,
        phase: Phase,
        parent: Span,
        common: Mapping[str, AttributeValue],
        result: SourceOutcome,
    ) -> Span:
        assert self._tracer is not None
        end_ns = phase.end_ns
        attributes: dict[str, Any] = {
            **common,
            **phase.attributes,
            "duration_ms": round((end_ns - phase.start_ns) / 1e6, 3),
        }
        if phase.name == "api" and result.fallback_reason:
            attributes["fallback_reason"] = result.fallback_reason
        span = self._tracer.start_span(
            PHASE_SPAN_NAMES.get(phase.name, f"skillmeat.{phase.name}"),
            context=trace.set_span_in_context(parent),
            kind=SpanKind.INTERNAL,
            attributes=self._clean(attributes),
            start_time=phase.start_ns,
        )
        for event in phase.events:
            span.add_event(event.name, self._clean(event.attributes), timestamp=event.at_ns)
        if phase.error is not None:
            self._fail(span, phase.error, end_ns)
        return span

    def _fail(self, span: Span, message: str, at_ns: int) -> None:
        message = scrub(message, self._secrets)
        span.set_status(Status(StatusCode.ERROR, message))
        span.add_event("exception", {"exception.message": message}, timestamp=at_ns)

    def _clean(self, attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
        clean: dict[str, AttributeValue] = {}
        for key, value in attributes.items():
            if value is None:
                continue
            if isinstance(value, str):
                value = scrub(value, self._secrets)
            elif not isinstance(value, bool | int | float):
                value = scrub(str(value), self._secrets)
            clean[key] = value
        return clean


def _total_ns(result: SourceOutcome) -> int:
    """From the scan's first step to the end of its last (the write, once it is recorded)."""
    phases = result.cost.phases
    if not phases:
        return 0
    return max(0, max(p.end_ns for p in phases) - min(p.start_ns for p in phases))


def _resource(env: Mapping[str, str], service_name: str | None) -> Resource:
    configured = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    attributes: dict[str, str] = {}
    if service_name or not configured:
        attributes["service.name"] = service_name or DEFAULT_SERVICE_NAME
    return Resource.create(attributes)


def _exporter_names(env: Mapping[str, str], signal: str) -> list[str]:
    raw = env.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    return [] if "none" in names else names


def _otlp_endpoint(env: Mapping[str, str], signal: str) -> str | None:
    endpoint = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return None
    protocol = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol.strip().lower() != "http/protobuf":
        logger.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported here: %s are sent as OTLP "
            "http/protobuf to %s (point the endpoint at the collector's HTTP port, usually 4318)",
            protocol,
            signal,
            endpoint,
        )
    return endpoint


def _unsupported(signal: str, name: str) -> None:
    logger.warning(
        "OTEL_%s_EXPORTER=%s is not supported here (otlp, console or none); no %s are exported "
        "through it",
        signal.upper(),
        name,
        signal,
    )


def _span_exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in _exporter_names(env, "traces"):
        if name == "otlp":
            if _otlp_endpoint(env, "traces"):
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                exporters.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter(out=sys.stderr))
        else:
            _unsupported("traces", name)
    return exporters


def _metric_exporters(env: Mapping[str, str]) -> list[MetricExporter]:
    # Run workers live for one run: cumulative series from many short processes would overwrite
    # each other downstream, while deltas simply add up. An explicit preference wins.
    delta = (
        None
        if env.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")
        else {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
    )
    exporters: list[MetricExporter] = []
    for name in _exporter_names(env, "metrics"):
        if name == "otlp":
            if _otlp_endpoint(env, "metrics"):
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                    OTLPMetricExporter,
                )

                exporters.append(OTLPMetricExporter(preferred_temporality=delta))
        elif name == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            exporters.append(ConsoleMetricExporter(out=sys.stderr))
        elif name != "prometheus":  # the pull exporter is `skillmeat-pipeline metrics-server`
            _unsupported("metrics", name)
    return exporters


# -- JSON logs -------------------------------------------------------------------------------------

LOGGER_TREE = "skillmeat_pipeline"
_log_context: dict[str, str] = {}
_log_context_lock = threading.Lock()


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
            "message": record.getMessage(),
        }
        structured = getattr(record, "record", None)
        if isinstance(structured, Mapping):
            for key, value in structured.items():
                payload.setdefault(str(key), value)
        dagster_meta = getattr(record, "dagster_meta", None)
        if isinstance(dagster_meta, Mapping):
            for key in ("run_id", "job_name", "step_key", "op_name", "resource_name"):
                if dagster_meta.get(key):
                    payload.setdefault(f"dagster_{key}", dagster_meta[key])
            if dagster_meta.get("orig_message"):
                payload["message"] = str(dagster_meta["orig_message"])
        with _log_context_lock:
            for key, value in _log_context.items():
                payload.setdefault(key, value)
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            payload["trace_id"] = trace.format_trace_id(span_context.trace_id)
            payload["span_id"] = trace.format_span_id(span_context.span_id)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(payload, default=str, ensure_ascii=False), secrets_from_env())


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record), secrets_from_env())


_HANDLER_MARK = "_skillmeat_handler"


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


# -- the metrics server ----------------------------------------------------------------------------

_MAX_PUSH_BYTES = 32 * 1024 * 1024
_MAX_CUMULATIVE_STREAMS = 50_000
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


def _label_name(key: str) -> str:
    name = _LABEL_NAME.sub("_", key)
    return f"_{name}" if name[:1].isdigit() else name


def _any_value(value: Any) -> str:
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind in ("array_value", "kvlist_value", "bytes_value"):
        return str(getattr(value, kind))
    return str(getattr(value, kind))


@dataclass(slots=True)
class _HistogramSeries:
    bounds: tuple[float, ...]
    counts: list[float]
    total: float = 0.0
    count: float = 0.0


@dataclass(slots=True)
class _Family:
    kind: str  # "counter" or "histogram"
    description: str


class MetricStore:
    """What run workers pushed over OTLP, added up per metric and label set.

    Monotonic sums become Prometheus counters and explicit-bucket histograms stay histograms. Delta
    points are added as they come; cumulative points are turned into deltas per stream (resource,
    metric, labels, start time), so both temporalities give correct totals. Label sets come from the
    data points only: resource attributes (which differ per worker) are dropped, so every worker
    adds into the same series. Other point kinds (gauges, exponential histograms) are ignored.
    """

    def __init__(self, known: Iterable[MetricInfo] = METRICS) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {m.name: _Family(m.kind, m.description) for m in known}
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._histograms: dict[tuple[str, tuple[tuple[str, str], ...]], _HistogramSeries] = {}
        self._previous: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.pushes = 0
        self.last_push_unix: float | None = None

    def ingest(self, request: ExportMetricsServiceRequest) -> int:
        """Add one OTLP export request; the number of data points taken."""
        taken = 0
        with self._lock:
            for resource_metrics in request.resource_metrics:
                resource = tuple(
                    sorted(
                        (kv.key, _any_value(kv.value))
                        for kv in resource_metrics.resource.attributes
                    )
                )
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        taken += self._ingest_metric(resource, metric)
            self.pushes += 1
            self.last_push_unix = time.time()
        return taken

    def _ingest_metric(self, resource: tuple[tuple[str, str], ...], metric: Any) -> int:
        kind = metric.WhichOneof("data")
        name = _LABEL_NAME.sub("_", metric.name)
        if kind == "sum" and metric.sum.is_monotonic:
            self._family(name, "counter", metric.description)
            cumulative = (
                metric.sum.aggregation_temporality == 2
            )  # AGGREGATION_TEMPORALITY_CUMULATIVE
            for point in metric.sum.data_points:
                labels = self._labels(point.attributes)
                value = float(getattr(point, point.WhichOneof("value") or "as_double"))
                if cumulative:
                    stream = (resource, name, labels, point.start_time_unix_nano)
                    previous = self._previous.get(stream)
                    self._remember(stream, value)
                    value = (
                        value - previous if previous is not None and value >= previous else value
                    )
                key = (name, labels)
                self._counters[key] = self._counters.get(key, 0.0) + value
            return len(metric.sum.data_points)
        if kind == "histogram":
            self._family(name, "histogram", metric.description)
            cumulative = metric.histogram.aggregation_temporality == 2
            for point in metric.histogram.data_points:
                labels = self._labels(point.attributes)
                bounds = tuple(point.explicit_bounds)
                counts = [float(c) for c in point.bucket_counts]
                total, count = (point.sum if point.HasField("sum") else 0.0), float(point.count)
                if cumulative:
                    stream = (resource, name, labels, point.start_time_unix_nano)
                    previous = self._previous.get(stream)
                    self._remember(stream, (bounds, counts, total, count))
                    if previous is not None and previous[0] == bounds and count >= previous[3]:
                        counts = [c - p for c, p in zip(counts, previous[1], strict=True)]
                        total, count = total - previous[2], count - previous[3]
                self._add_histogram(name, labels, bounds, counts, total, count)
            return len(metric.histogram.data_points)
        logger.debug("metrics server: %s is a %s, not kept", metric.name, kind)
        return 0

    def _family(self, name: str, kind: str, description: str) -> _Family:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _Family(kind, description or name)
        return family

    @staticmethod
    def _labels(attributes: Any) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((_label_name(kv.key), _any_value(kv.value)) for kv in attributes))

    def _remember(self, stream: tuple[Any, ...], value: Any) -> None:
        self._previous[stream] = value
        self._previous.move_to_end(stream)
        while len(self._previous) > _MAX_CUMULATIVE_STREAMS:
            self._previous.popitem(last=False)

    def _add_histogram(
        self,
        name: str,
        labels: tuple[tuple[str, str], ...],
        bounds: tuple[float, ...],
        counts: list[float],
        total: float,
        count: float,
    ) -> None:
        if len(counts) != len(bounds) + 1:
            logger.warning("metrics server: %s has a malformed histogram point; dropped", name)
            return
        series = self._histograms.get((name, labels))
        if series is None or series.bounds != bounds:
            if series is not None:
                logger.warning(
                    "metrics server: the buckets of %s%s changed; its totals restart", name, labels
                )
            series = self._histograms[(name, labels)] = _HistogramSeries(
                bounds, [0.0] * len(counts)
            )
        series.counts = [a + b for a, b in zip(series.counts, counts, strict=True)]
        series.total += total
        series.count += count

    def collector(self) -> Collector:
        """A prometheus_client collector over this store (a series has only the labels it has)."""
        from prometheus_client.core import GaugeMetricFamily, Metric
        from prometheus_client.utils import floatToGoString

        store = self

        class _StoreCollector:
            def collect(self) -> Iterator[Metric]:
                with store._lock:
                    families = {k: (f.kind, f.description) for k, f in store._families.items()}
                    counters = sorted(store._counters.items())
                    histograms = sorted(
                        (k, (v.bounds, list(v.counts), v.total, v.count))
                        for k, v in store._histograms.items()
                    )
                    pushes, last_push = store.pushes, store.last_push_unix
                for name, (kind, description) in sorted(families.items()):
                    if kind == "counter":
                        family = Metric(name.removesuffix("_total"), description, "counter")
                        for (series, labels), value in counters:
                            if series == name:
                                family.add_sample(family.name + "_total", dict(labels), value)
                        yield family
                        continue
                    family = Metric(name, description, "histogram")
                    for (series, labels), (bounds, counts, total, count) in histograms:
                        if series != name:
                            continue
                        running = 0.0
                        for bound, bucket in zip(bounds, counts, strict=False):
                            running += bucket
                            le = {**dict(labels), "le": floatToGoString(bound)}
                            family.add_sample(f"{name}_bucket", le, running)
                        family.add_sample(f"{name}_bucket", {**dict(labels), "le": "+Inf"}, count)
                        family.add_sample(f"{name}_count", dict(labels), count)
                        family.add_sample(f"{name}_sum", dict(labels), total)
                    yield family
                received = Metric(
                    "skillmeat_metrics_server_otlp_pushes",
                    "OTLP metric export requests received from run workers.",
                    "counter",
                )
                received.add_sample("skillmeat_metrics_server_otlp_pushes_total", {}, pushes)
                yield received
                if last_push is not None:
                    yield GaugeMetricFamily(
                        "skillmeat_metrics_server_last_push_timestamp_seconds",
                        "When a run worker last pushed metrics (Unix time).",
                        value=last_push,
                    )

        return _StoreCollector()  # type: ignore[return-value]

    def render(self) -> bytes:
        """The Prometheus text exposition of everything received."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector())
        return generate_latest(registry)


class _MetricsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _MetricsHttpServer

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("metrics server: " + format, *args)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            from prometheus_client.exposition import CONTENT_TYPE_LATEST

            self._reply(200, self.server.store.render(), CONTENT_TYPE_LATEST)
        elif path in ("/", "/healthz"):
            self._reply(200, b"ok\n", "text/plain; charset=utf-8")
        else:
            self._reply(404, b"not found: scrape /metrics\n", "text/plain; charset=utf-8")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._reply(411, b"Content-Length required\n", "text/plain; charset=utf-8")
            return
        if int(length) > _MAX_PUSH_BYTES:
            self.close_connection = True
            self._reply(413, b"request too large\n", "text/plain; charset=utf-8")
            return
        body = self.rfile.read(int(length))
        if path != "/v1/metrics":
            # traces and logs go to a collector or tracing backend, never here
            message = f"{path}: this server only takes OTLP metrics at /v1/metrics\n"
            self._reply(404, message.encode(), "text/plain; charset=utf-8")
            return
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
            ExportMetricsServiceResponse,
        )

        content_type = self.headers.get("Content-Type", "application/x-protobuf")
        request = ExportMetricsServiceRequest()
        try:
            body = _decompress(body, self.headers.get("Content-Encoding", ""))
            if "json" in content_type:
                from google.protobuf import json_format

                json_format.Parse(body, request, ignore_unknown_fields=True)
            else:
                request.ParseFromString(body)
        except Exception as exc:  # a bad push must never take the server down
            logger.warning(
                "metrics server: unreadable OTLP push from %s: %s", self.client_address[0], exc
            )
            self._reply(400, f"unreadable OTLP request: {exc}\n".encode(), "text/plain")
            return
        points = self.server.store.ingest(request)
        logger.debug("metrics server: %d points from %s", points, self.client_address[0])
        if "json" in content_type:
            self._reply(200, b"{}", "application/json")
        else:
            response = ExportMetricsServiceResponse().SerializeToString()
            self._reply(200, response, "application/x-protobuf")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding not in ("", "identity"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    return body


class _MetricsHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: MetricStore) -> None:
        self.store = store
        super().__init__(address, _MetricsHandler)


class MetricsServer:
    """Prometheus `/metrics` for every run's scans, fed by run workers over OTLP/HTTP.

    GET `/metrics`: Prometheus text. POST `/v1/metrics`: OTLP metrics (protobuf or JSON, gzip ok),
    what a worker's exporter sends when `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` points here.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9464, store: MetricStore | None = None):
        self.store = store or MetricStore()
        self._address = (host, port)
        self._httpd: _MetricsHttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsServer:
        if self._httpd is not None:
            raise RuntimeError("metrics server already started")
        self._httpd = _MetricsHttpServer(self._address, self.store)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"metrics-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("metrics server is not running")
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return self._address[0]

    def url(self, path: str = "/metrics") -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{host}:{self.port}{path}"
