"""Span and metric exporters from the standard `OTEL_*` environment variables.

`OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` (`otlp`, `console`, `none`),
`OTEL_EXPORTER_OTLP_ENDPOINT` and the per-signal `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT`,
`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`; the SDK itself reads `OTEL_TRACES_SAMPLER` and
`OTEL_METRIC_EXPORT_INTERVAL`. OTLP (over HTTP, protobuf) is used only where an endpoint is set:
nothing is exported by default.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping

from opentelemetry.sdk.metrics import Counter, Histogram
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "skillmeat-pipeline"


def resource(env: Mapping[str, str], service_name: str | None) -> Resource:
    """`service.name` from `service_name`, else the environment, else `skillmeat-pipeline`."""
    configured = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    attributes: dict[str, str] = {}
    if service_name or not configured:
        attributes["service.name"] = service_name or DEFAULT_SERVICE_NAME
    return Resource.create(attributes)


def span_exporters(env: Mapping[str, str]) -> list[SpanExporter]:
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


def metric_exporters(env: Mapping[str, str]) -> list[MetricExporter]:
    # Run workers live for one run: cumulative series from many short processes would overwrite
    # each other downstream, while deltas simply add up. An explicit preference wins.
    delta: dict[type, AggregationTemporality] | None = (
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
