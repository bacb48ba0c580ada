"""The scan metrics (SPEC §7): names, buckets, instruments, and what one scan records.

Histograms `skillmeat_clone_duration_seconds`, `skillmeat_extraction_duration_seconds`,
`skillmeat_scan_total_duration_seconds` (labels `strategy`, `artifact_count_bucket`) and the counter
`skillmeat_github_api_calls_total` (labels `endpoint` rest|raw, `status_class` 2xx..5xx|error).
Run workers are short-lived processes, so nothing is served from them: they push over OTLP/HTTP
with delta temporality when a run ends (see exporters.py), to an OpenTelemetry Collector or to
`skillmeat-pipeline metrics-server` (lib/services/metrics_server.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.metrics import Counter, Histogram, Meter

from skillmeat_pipeline.lib.core.strategy import Strategy
from skillmeat_pipeline.lib.scan.outcomes import Scanned, SourceOutcome

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


class ScanMetrics:
    """The instruments of `METRICS` on one meter, and what a finished scan adds to them."""

    def __init__(self, meter: Meter) -> None:
        self._histograms: dict[str, Histogram] = {}
        self._api_calls: Counter | None = None
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

    def record(self, result: SourceOutcome) -> None:
        cost = result.cost
        if self._api_calls is not None:
            for (endpoint, status_class), count in cost.responses.items():
                self._api_calls.add(count, {"endpoint": endpoint, "status_class": status_class})
        if not isinstance(result, Scanned):
            return  # a current source was not scanned; a failed one has no artifact count
        labels = {
            "strategy": result.strategy.value,
            "artifact_count_bucket": artifact_count_bucket(result.artifact_count),
        }
        # the numbers of the partition's clone_ms and extract_ms metadata
        if result.strategy is not Strategy.API and cost.clone_ms:
            self._histograms[CLONE_DURATION].record(cost.clone_ms / 1000, labels)
        self._histograms[EXTRACTION_DURATION].record(cost.extract_ms / 1000, labels)
        self._histograms[SCAN_DURATION].record(result.cost.busy_ns() / 1e9, labels)
