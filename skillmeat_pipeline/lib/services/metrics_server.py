"""`skillmeat-pipeline metrics-server`: Prometheus `/metrics` for every run, fed over OTLP/HTTP.

Run workers are short-lived processes, so nothing is scraped from them: when a run ends its worker
pushes the run's metrics here (POST `/v1/metrics`, delta temporality, see
observability/exporters.py) and `MetricStore` adds up what every worker pushed. Prometheus scrapes
this one process at GET `/metrics`.
"""

from __future__ import annotations

import gzip
import logging
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from skillmeat_pipeline.lib.observability.metrics import METRICS, MetricInfo
from skillmeat_pipeline.lib.services.http import BackgroundHTTPServer, ThreadedHTTPServer

if TYPE_CHECKING:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9464
_MAX_PUSH_BYTES = 32 * 1024 * 1024
_MAX_CUMULATIVE_STREAMS = 50_000
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")

_Labels = tuple[tuple[str, str], ...]


def _label_name(key: str) -> str:
    name = _LABEL_NAME.sub("_", key)
    return f"_{name}" if name[:1].isdigit() else name


def _any_value(value: Any) -> str:
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
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
        self._counters: dict[tuple[str, _Labels], float] = {}
        self._histograms: dict[tuple[str, _Labels], _HistogramSeries] = {}
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

    def _ingest_metric(self, resource: _Labels, metric: Any) -> int:
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
    def _labels(attributes: Any) -> _Labels:
        return tuple(sorted((_label_name(kv.key), _any_value(kv.value)) for kv in attributes))

    def _remember(self, stream: tuple[Any, ...], value: Any) -> None:
        self._previous[stream] = value
        self._previous.move_to_end(stream)
        while len(self._previous) > _MAX_CUMULATIVE_STREAMS:
            self._previous.popitem(last=False)

    def _add_histogram(
        self,
        name: str,
        labels: _Labels,
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
                            upper = floatToGoString(bound)  # type: ignore[no-untyped-call]
                            le = {**dict(labels), "le": upper}
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

        return _StoreCollector()

    def render(self) -> bytes:
        """The Prometheus text exposition of everything received."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector())
        return generate_latest(registry)


class _MetricsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadedHTTPServer[MetricsServer]

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("metrics server: " + format, *args)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            from prometheus_client.exposition import CONTENT_TYPE_LATEST

            self._reply(200, self.server.owner.store.render(), CONTENT_TYPE_LATEST)
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
                from google.protobuf import json_format  # type: ignore[import-untyped,unused-ignore]

                json_format.Parse(body, request, ignore_unknown_fields=True)
            else:
                request.ParseFromString(body)
        except Exception as exc:  # a bad push must never take the server down
            logger.warning(
                "metrics server: unreadable OTLP push from %s: %s", self.client_address[0], exc
            )
            self._reply(400, f"unreadable OTLP request: {exc}\n".encode(), "text/plain")
            return
        points = self.server.owner.store.ingest(request)
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


class MetricsServer(BackgroundHTTPServer):
    """Prometheus `/metrics` for every run's scans, fed by run workers over OTLP/HTTP.

    GET `/metrics` (`url`): Prometheus text. POST `/v1/metrics` (`otlp_url`): OTLP metrics
    (protobuf or JSON, gzip ok), what a worker's exporter sends when
    `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` points here.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        store: MetricStore | None = None,
    ) -> None:
        super().__init__(
            _MetricsHandler, host=host, port=port, name="metrics-server", poll_interval_s=0.2
        )
        self.store = store or MetricStore()

    @property
    def url(self) -> str:
        """Where Prometheus scrapes."""
        return f"{self.base_url}/metrics"

    @property
    def otlp_url(self) -> str:
        """Where run workers push (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`)."""
        return f"{self.base_url}/v1/metrics"
