"""Observability of scans (SPEC §7): `Telemetry`, the spans and metrics of one run or process.

The parts live next to this facade: metrics.py (names, buckets, instruments), tracing.py (a
source's span tree from its recorded phases), exporters.py (OTLP or console, from the `OTEL_*`
variables) and logs.py (JSON log lines). The `/metrics` server that run workers push to is a
service of its own (lib/services/metrics_server.py).

**Secrets** (`core.secrets.SECRET_VARIABLES`, `GITHUB_TOKEN` first) are redacted from every span
attribute, span event and log line, on top of the fetchers never putting them in a message.

No Dagster import here: `defs/resources.py` wraps `Telemetry` in a resource.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from skillmeat_pipeline.lib.core.secrets import Secret, secrets_from_env
from skillmeat_pipeline.lib.observability import exporters
from skillmeat_pipeline.lib.observability.metrics import ScanMetrics
from skillmeat_pipeline.lib.observability.tracing import ScanTracer
from skillmeat_pipeline.lib.scan.outcomes import SourceOutcome

logger = logging.getLogger(__name__)

INSTRUMENTATION_SCOPE = "skillmeat_pipeline"


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
        secrets: Iterable[Secret | str] | None = None,
        trace_url_template: str | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._owns_providers = owns_providers
        self.trace_url_template = trace_url_template
        self._tracer = (
            ScanTracer(
                tracer_provider.get_tracer(INSTRUMENTATION_SCOPE),
                secrets_from_env() if secrets is None else secrets,
            )
            if tracer_provider is not None
            else None
        )
        self._metrics = (
            ScanMetrics(meter_provider.get_meter(INSTRUMENTATION_SCOPE))
            if meter_provider is not None
            else None
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
        secrets: Iterable[Secret | str] | None = None,
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
        span_exporters = exporters.span_exporters(env)
        metric_exporters = exporters.metric_exporters(env)
        if not span_exporters and not metric_exporters:
            return cls(secrets=secrets)
        resource = exporters.resource(env, service_name)
        tracer_provider = None
        if span_exporters:
            tracer_provider = TracerProvider(resource=resource)
            for exporter in span_exporters:
                tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        meter_provider = None
        if metric_exporters:
            readers: list[MetricReader] = [
                PeriodicExportingMetricReader(e) for e in metric_exporters
            ]
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

    def record_scan(self, result: SourceOutcome, *, run_id: str | None = None) -> str | None:
        """Metrics and the span tree of one source's scan; its trace id (hex) when sampled."""
        if self._metrics is not None:
            self._metrics.record(result)
        if self._tracer is None:
            return None
        return self._tracer.emit(result, run_id)
