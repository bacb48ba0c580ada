"""Spans, metrics, `/metrics` and JSON logs of `marketplace_index` runs (SPEC §7).

Every run is the real asset (`dg.materialize`) against the local git server and the GitHub
emulator, over three synthetic GitHub repositories sized for the three strategies:

    tele/tiny    2 skills  -> api              (artifact_count_bucket 0-5)
    tele/medium  8 skills  -> sparse_manifest  (5-20)
    tele/large  25 skills  -> sparse_directory (20-50, common root `skills`)
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml
from opentelemetry import trace
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from skillmeat_pipeline.defs.index.assets import marketplace_index
from skillmeat_pipeline.defs.resources import TelemetryResource, resource_defs
from skillmeat_pipeline.lib.core.strategy import Strategy, build_clone_target
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.fetch.github.errors import ApiError
from skillmeat_pipeline.lib.fetch.github.http import status_class
from skillmeat_pipeline.lib.observability.logs import JsonFormatter, configure_logging
from skillmeat_pipeline.lib.observability.metrics import (
    API_CALLS,
    CLONE_DURATION,
    EXTRACTION_DURATION,
    SCAN_DURATION,
    artifact_count_bucket,
)
from skillmeat_pipeline.lib.observability.telemetry import Telemetry
from skillmeat_pipeline.lib.scan.cost import ScanCost, Timeline
from skillmeat_pipeline.lib.scan.outcomes import Current, Failed
from skillmeat_pipeline.lib.services.metrics_server import MetricsServer, MetricStore
from skillmeat_pipeline.testing.git_server import Fault, GitHttpServer, closed_port
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator
from skillmeat_pipeline_tests.fixtures_github import TOKEN, make_repo
from skillmeat_pipeline_tests.fixtures_pipeline import run_log

SIZES = {"tele/tiny": 2, "tele/medium": 8, "tele/large": 25}
STRATEGIES = {
    "tele/tiny": "api",
    "tele/medium": "sparse_manifest",
    "tele/large": "sparse_directory",
}
HISTOGRAMS = (CLONE_DURATION, EXTRACTION_DURATION, SCAN_DURATION)


def current_outcome() -> Current:
    """A source whose head is the indexed commit (nothing fetched)."""
    target = build_clone_target(
        Strategy.SPARSE_MANIFEST,
        ["skills/a"],
        ["skills/a/SKILL.md"],
        commit_sha="c1",
        tree_sha="t1",
    )
    return Current(source_key="a/b", commit_sha="c1", target=target)


def build_served_root(root: Path) -> Path:
    for repo, count in SIZES.items():
        owner, name = repo.split("/")
        files = {
            f"skills/skill-{j}/SKILL.md": f"---\nname: {name}-{j}\ndescription: skill {j} of "
            f"{repo}\n---\n# Skill {j}\n".encode()
            for j in range(count)
        }
        make_repo(root / owner / f"{name}.git", files)
    return root


@pytest.fixture(scope="module")
def served_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_served_root(tmp_path_factory.mktemp("telemetry-served"))


# -- telemetry collected in memory -----------------------------------------------------------------


class Capture:
    """In-memory span exporter and metric reader behind a real `TelemetryResource`.

    The span processor waits an hour between exports, so a span shows up in the exporter during a
    run only if something flushed it: the resource's teardown.
    """

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.processor = BatchSpanProcessor(self.exporter, schedule_delay_millis=3_600_000)
        self.reader = InMemoryMetricReader()
        self.telemetry = Telemetry.for_test(
            span_processors=[self.processor], metric_readers=[self.reader]
        )

    def resource(self) -> TelemetryResource:
        telemetry = self.telemetry

        class InMemoryTelemetry(TelemetryResource):
            def create_telemetry(self) -> Telemetry:
                return telemetry

        return InMemoryTelemetry()

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def points(self) -> dict[str, dict[tuple[tuple[str, str], ...], object]]:
        """Metric name -> sorted label items -> data point (cumulative since the capture began)."""
        data = self.reader.get_metrics_data()
        found: dict[str, dict[tuple[tuple[str, str], ...], object]] = {}
        for resource_metrics in data.resource_metrics if data else []:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        labels = tuple(sorted((k, str(v)) for k, v in point.attributes.items()))
                        found.setdefault(metric.name, {})[labels] = point
        return found

    def close(self) -> None:
        self.processor.shutdown()


@pytest.fixture
def capture() -> Iterator[Capture]:
    captured = Capture()
    yield captured
    captured.close()


# -- the pipeline on local servers -----------------------------------------------------------------


@dataclass
class Stack:
    git: GitHttpServer
    github: GitHubEmulator
    instance: dg.DagsterInstance
    sources_path: Path

    def write_sources(self, sources: list[dict]) -> list[str]:
        self.sources_path.write_text(yaml.safe_dump({"sources": sources}))
        keys = [s.get("key") or s["github"] for s in sources]
        known = set(self.instance.get_dynamic_partitions("marketplace_sources"))
        new = [k for k in keys if k not in known]
        self.instance.add_dynamic_partitions("marketplace_sources", new)
        return keys

    def materialize(
        self, keys: list[str], *, telemetry: TelemetryResource | None = None, force: bool = False
    ) -> dg.ExecuteInProcessResult:
        config = {"force": True} if force else {}
        run_config = {"ops": {"marketplace_index": {"ops": {"resolve_heads": {"config": config}}}}}
        return dg.materialize(
            [marketplace_index],
            instance=self.instance,
            # built now: GITHUB_TOKEN is set by the stack, after the definitions were loaded
            resources={**resource_defs(), "telemetry": telemetry or TelemetryResource()},
            run_config=run_config,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
            raise_on_error=False,
        )

    def materializations(self, result: dg.ExecuteInProcessResult) -> dict[str, dict]:
        logs = self.instance.all_logs(
            result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        events = [log.dagster_event.event_specific_data.materialization for log in logs]
        return {e.partition: {k: v.value for k, v in e.metadata.items()} for e in events}

    def run_log(self, result: dg.ExecuteInProcessResult) -> list[tuple[int, str]]:
        return run_log(self.instance, result.run_id)


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_") or name.startswith("SKILLMEAT_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)


@contextmanager
def open_stack(
    served_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    token: str | None = None,
    instance_overrides: dict | None = None,
) -> Iterator[Stack]:
    clean_environment(monkeypatch)
    with (
        GitHttpServer(served_root, token=token) as git,
        GitHubEmulator(
            served_root, git_base_url=git.base_url, tokens=[token] if token else None
        ) as github,
        dg.instance_for_test(overrides=instance_overrides) as instance,
    ):
        sources_path = tmp_path / "sources.yaml"
        monkeypatch.setenv("SKILLMEAT_SOURCES_FILE", str(sources_path))
        monkeypatch.setenv("SKILLMEAT_INDEX_URL", f"sqlite:///{tmp_path / 'catalog.sqlite'}")
        monkeypatch.setenv("SKILLMEAT_GITHUB_API_URL", github.api_url)
        monkeypatch.setenv("SKILLMEAT_GITHUB_RAW_URL", github.raw_url)
        monkeypatch.setenv("SKILLMEAT_GITHUB_GIT_URL", git.base_url)
        # the servers listen on loopback, which sources may not reach unless allowed
        monkeypatch.setenv("SKILLMEAT_ALLOWED_PRIVATE_HOSTS", "127.0.0.1")
        monkeypatch.setenv("CLONE_TIMEOUT_SECONDS", "30")
        monkeypatch.setenv("MIN_CLONE_DISK_SPACE_MB", "1")
        if token:
            monkeypatch.setenv("GITHUB_TOKEN", token)
        yield Stack(git, github, instance, sources_path)


@pytest.fixture
def stack(served_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    with open_stack(served_root, tmp_path, monkeypatch) as opened:
        yield opened


@pytest.fixture
def logger_tree() -> Iterator[logging.Logger]:
    """The `skillmeat_pipeline` logger, its handlers and level put back after the test."""
    tree = logging.getLogger("skillmeat_pipeline")
    handlers, level = list(tree.handlers), tree.level
    yield tree
    for handler in [h for h in tree.handlers if h not in handlers]:
        tree.removeHandler(handler)
    tree.setLevel(level)


# -- span trees ------------------------------------------------------------------------------------


def roots(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    """The `skillmeat.scan` span of each source."""
    found = [s for s in spans if s.name == "skillmeat.scan"]
    by_key = {s.attributes["dagster.partition_key"]: s for s in found}
    assert len(by_key) == len(found), "one scan span per source"
    return by_key


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return sorted(
        (s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id),
        key=lambda s: s.start_time,
    )


def assert_well_formed(spans: list[ReadableSpan], root: ReadableSpan, run_id: str) -> None:
    """One trace, children inside their parents, the attributes every span carries."""
    assert root.parent is None
    tree = [s for s in spans if s.context.trace_id == root.context.trace_id]
    for span in tree:
        assert span.attributes["dagster.run_id"] == run_id
        assert span.attributes["dagster.partition_key"] == root.attributes["dagster.partition_key"]
        assert span.attributes["strategy"] == root.attributes["strategy"]
        assert span.attributes["duration_ms"] == pytest.approx(
            (span.end_time - span.start_time) / 1e6, abs=0.01
        )
        if span is not root:
            parent = next(p for p in tree if p.context.span_id == span.parent.span_id)
            assert parent.start_time <= span.start_time <= span.end_time <= parent.end_time
    # a source's steps run one after another
    steps = children(spans, root)
    for earlier, later in itertools.pairwise(steps):
        assert earlier.end_time <= later.start_time


def test_clone_scan_emits_its_span_tree_flushed_when_the_run_ends(stack: Stack, capture: Capture):
    keys = stack.write_sources([{"github": "tele/medium"}])
    result = stack.materialize(keys, telemetry=capture.resource())
    assert result.success
    meta = stack.materializations(result)["tele/medium"]

    # no flush here: the processor exports only when flushed, and the run's teardown did it
    spans = capture.spans()
    root = roots(spans)["tele/medium"]
    assert_well_formed(spans, root, result.run_id)
    steps = children(spans, root)
    assert [s.name for s in steps] == [
        "skillmeat.resolve_head",
        "skillmeat.strategy_selection",
        "skillmeat.clone",
        "skillmeat.extraction",
        "skillmeat.db_write",
    ]
    assert all(s.status.status_code is StatusCode.UNSET for s in [root, *steps])
    resolve, select, clone, extraction, write = steps

    assert root.attributes["strategy"] == "sparse_manifest"
    assert root.attributes["scan_status"] == "scanned"
    assert root.attributes["artifact_count"] == 8
    assert root.attributes["patterns_count"] == 8
    assert root.attributes["api_calls"] == meta["api_calls"] == 3  # repository, commit, tree
    assert root.attributes["commit_sha"] == meta["commit_sha"]
    assert meta["otel_trace_id"] == trace.format_trace_id(root.context.trace_id)

    assert resolve.attributes["commit_sha"] == meta["commit_sha"]
    assert select.attributes["selected_strategy"] == "sparse_manifest"
    assert select.attributes["patterns_count"] == 8
    assert select.attributes["artifact_count"] == 8
    assert select.attributes["reason"] == "count 8 in 3..20"
    assert select.attributes["api_calls"] == 3
    assert clone.attributes["commit_sha"] == meta["commit_sha"]
    # the pack; the partition's bytes_fetched also counts the sizing calls' bodies
    assert 0 < clone.attributes["bytes_fetched"] < meta["bytes_fetched"]
    assert root.attributes["bytes_fetched"] == meta["bytes_fetched"]
    assert extraction.attributes["artifact_count"] == 8
    assert extraction.attributes["success_count"] == 8
    assert write.attributes["rows_affected"] == meta["rows_affected"] == 8


def test_batch_is_held_until_flushed():
    """What makes the run test above prove the teardown flush: nothing leaves unflushed."""
    captured = Capture()
    try:
        captured.telemetry.record_scan(current_outcome(), run_id="r")
        assert captured.spans() == []
        assert captured.telemetry.flush()
        assert [s.name for s in captured.spans()] == ["skillmeat.scan"]
    finally:
        captured.close()


def test_clone_failure_falls_back_to_the_api_in_the_same_trace(stack: Stack, capture: Capture):
    keys = stack.write_sources([{"github": "tele/medium"}])
    stack.git.set_fault("tele/medium", Fault.DROP_MID_PACK)
    result = stack.materialize(keys, telemetry=capture.resource())
    assert result.success
    meta = stack.materializations(result)["tele/medium"]

    spans = capture.spans()
    root = roots(spans)["tele/medium"]
    assert_well_formed(spans, root, result.run_id)
    steps = children(spans, root)
    assert [s.name for s in steps] == [
        "skillmeat.resolve_head",
        "skillmeat.strategy_selection",
        "skillmeat.clone",  # the first attempt
        "skillmeat.clone",  # the retry
        "skillmeat.api_fallback",
        "skillmeat.db_write",
    ]
    for clone in steps[2:4]:
        assert clone.status.status_code is StatusCode.ERROR
        assert "cloning" in clone.status.description
        assert [e.name for e in clone.events] == ["exception"]
    api = steps[4]
    assert api.status.status_code is StatusCode.UNSET
    assert api.attributes["fallback"] is True
    assert api.attributes["fallback_reason"] == meta["fallback_reason"]
    assert api.attributes["raw_reads"] == meta["raw_reads"] == 8
    assert api.attributes["commit_sha"] == meta["commit_sha"]
    [extraction] = children(spans, api)
    assert extraction.name == "skillmeat.extraction"
    assert extraction.attributes["success_count"] == 8

    assert root.status.status_code is StatusCode.UNSET  # the source was indexed
    assert root.attributes["strategy"] == "api"
    assert "clone failed" in root.attributes["fallback_reason"]
    assert meta["otel_trace_id"] == trace.format_trace_id(root.context.trace_id)


def test_a_failed_partition_has_an_error_trace_and_no_metadata(stack: Stack, capture: Capture):
    keys = stack.write_sources(
        [{"key": "plain/medium", "url": stack.git.url_for("tele/medium")}, {"github": "tele/tiny"}]
    )
    stack.git.set_fault("tele/medium", Fault.NOT_FOUND)
    result = stack.materialize(keys, telemetry=capture.resource())
    assert not result.success
    assert set(stack.materializations(result)) == {"tele/tiny"}
    spans = capture.spans()
    root = roots(spans)["plain/medium"]
    assert root.status.status_code is StatusCode.ERROR
    assert "404" in root.status.description
    assert [s.name for s in children(spans, root)] == [
        "skillmeat.resolve_head",
        "skillmeat.db_write",  # the failure is recorded on the source row
    ]
    assert children(spans, root)[0].status.status_code is StatusCode.ERROR


# -- metrics ---------------------------------------------------------------------------------------


def labels(strategy: str, bucket: str) -> tuple[tuple[str, str], ...]:
    return (("artifact_count_bucket", bucket), ("strategy", strategy))


def test_metrics_of_three_sources_with_different_strategies(stack: Stack, capture: Capture):
    keys = stack.write_sources([{"github": repo} for repo in SIZES])
    result = stack.materialize(keys, telemetry=capture.resource())
    assert result.success
    metadata = stack.materializations(result)
    assert {k: m["strategy"] for k, m in metadata.items()} == STRATEGIES

    points = capture.points()
    expected = {
        repo: labels(STRATEGIES[repo], artifact_count_bucket(n)) for repo, n in SIZES.items()
    }
    assert set(expected.values()) == {
        labels("api", "0-5"),
        labels("sparse_manifest", "5-20"),
        labels("sparse_directory", "20-50"),
    }
    # extraction and total: every scanned source; clone: only the cloned ones
    assert set(points[EXTRACTION_DURATION]) == set(expected.values())
    assert set(points[SCAN_DURATION]) == set(expected.values())
    cloned = {r: lab for r, lab in expected.items() if STRATEGIES[r] != "api"}
    assert set(points[CLONE_DURATION]) == set(cloned.values())
    for repo, key in expected.items():
        meta = metadata[repo]
        extraction = points[EXTRACTION_DURATION][key]
        assert extraction.count == 1
        assert extraction.sum == pytest.approx(meta["extract_ms"] / 1000)
        total = points[SCAN_DURATION][key]
        assert total.count == 1
        # the same span of time as total_ms, from the other clock, taken a moment earlier
        assert total.sum == pytest.approx(meta["total_ms"] / 1000, abs=0.25)
        assert total.sum >= extraction.sum
        if repo in cloned:
            assert points[CLONE_DURATION][key].count == 1
            assert points[CLONE_DURATION][key].sum == pytest.approx(meta["clone_ms"] / 1000)
        buckets = extraction.bucket_counts
        assert sum(buckets) == 1 and len(extraction.explicit_bounds) == len(buckets) - 1

    # every request the emulator answered, counted once, by endpoint kind and status class
    seen: dict[tuple[tuple[str, str], ...], int] = {}
    for call in stack.github.calls:
        key = (("endpoint", call.host), ("status_class", status_class(call.status)))
        seen[key] = seen.get(key, 0) + 1
    assert {k: p.value for k, p in points[API_CALLS].items()} == seen
    assert seen[(("endpoint", "rest"), ("status_class", "2xx"))] == 9  # 3 sizing calls each
    assert seen[(("endpoint", "raw"), ("status_class", "2xx"))] == 2  # tele/tiny's manifests
    assert sum(m["api_calls"] for m in metadata.values()) == 9


def test_a_second_run_adds_to_the_histograms_and_unchanged_sources_add_nothing(
    stack: Stack, capture: Capture
):
    keys = stack.write_sources([{"github": "tele/medium"}])
    assert stack.materialize(keys, telemetry=capture.resource()).success
    assert stack.materialize(keys, telemetry=capture.resource(), force=True).success
    current = stack.materialize(keys, telemetry=capture.resource())
    assert current.success
    assert stack.materializations(current)["tele/medium"]["scan_status"] == "current"
    points = capture.points()
    key = labels("sparse_manifest", "5-20")
    assert points[SCAN_DURATION][key].count == 2
    assert points[CLONE_DURATION][key].count == 2
    # the unchanged source has a trace, but no scan
    assert len(roots_by_run(capture.spans())) == 3


def roots_by_run(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {s.attributes["dagster.run_id"]: s for s in spans if s.name == "skillmeat.scan"}


def test_github_client_counts_requests_by_endpoint_and_status_class(served_root: Path):
    with GitHubEmulator(served_root) as github:
        github.inject_fault("tele/tiny", 404, times=1)
        client = GitHubClient(api_url=github.api_url, raw_url=github.raw_url)
        stats = client.start_scan("tele/tiny")
        with pytest.raises(ApiError):
            client.repository("tele/tiny", scan=stats)
        snapshot = client.fetch_snapshot("tele/tiny", scan=stats)
        snapshot.read_blob(next(e for e in snapshot.entries if e.path.endswith("SKILL.md")))
        assert client.fetch_snapshot("tele/tiny", scan=stats).commit_sha == snapshot.commit_sha
        client.close()
    assert stats.responses == {
        ("rest", "4xx"): 1,
        ("rest", "2xx"): 2,  # commit and tree
        ("rest", "3xx"): 1,  # the commit again: 304 Not Modified (the tree is cached by SHA)
        ("raw", "2xx"): 1,
    }
    with closed_port() as port:
        client = GitHubClient(
            api_url=f"http://127.0.0.1:{port}", raw_url=f"http://127.0.0.1:{port}"
        )
        stats = client.start_scan("tele/tiny")
        with pytest.raises(ApiError, match="cannot reach"):
            client.repository("tele/tiny", scan=stats)
        client.close()
    assert stats.responses == {("rest", "error"): 1}
    cost = ScanCost().plus(responses=stats.responses).plus(responses=stats.responses)
    assert cost.responses == {("rest", "error"): 2}


@pytest.mark.parametrize(
    ("count", "bucket"),
    [(0, "0-5"), (4, "0-5"), (5, "5-20"), (19, "5-20"), (20, "20-50"), (49, "20-50"), (50, "50+")],
)
def test_artifact_count_buckets(count: int, bucket: str):
    assert artifact_count_bucket(count) == bucket


# -- /metrics --------------------------------------------------------------------------------------


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> label items -> value, from Prometheus text fetched over HTTP."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def test_runs_push_metrics_to_the_metrics_server_which_serves_prometheus_text(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    keys = stack.write_sources([{"github": repo} for repo in SIZES])
    with MetricsServer(port=0) as server:
        # the run worker's configuration: the real resource, exporters from OTEL_* variables
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", server.otlp_url)
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")  # only the flush pushes
        first = stack.materialize(keys)
        assert first.success
        after_one = scrape(server.url)
        assert stack.materialize(keys, force=True).success
        after_two = scrape(server.url)
    metadata = stack.materializations(first)
    for name in HISTOGRAMS:
        assert f"{name}_bucket" in after_two and f"{name}_sum" in after_two
    for repo, strategy in STRATEGIES.items():
        key = labels(strategy, artifact_count_bucket(SIZES[repo]))
        assert after_one[f"{SCAN_DURATION}_count"][key] == 1
        assert after_one[f"{EXTRACTION_DURATION}_sum"][key] == pytest.approx(
            metadata[repo]["extract_ms"] / 1000
        )
        # two runs (two short-lived meter providers, as two workers would be) add up
        assert after_two[f"{SCAN_DURATION}_count"][key] == 2
        inf = tuple(sorted([*key, ("le", "+Inf")]))
        assert after_two[f"{EXTRACTION_DURATION}_bucket"][inf] == 2
    assert labels("api", "0-5") not in after_two[f"{CLONE_DURATION}_count"]
    rest_ok = (("endpoint", "rest"), ("status_class", "2xx"))
    assert after_one[API_CALLS][rest_ok] == 9
    assert after_two["skillmeat_metrics_server_otlp_pushes_total"][()] == 2


def test_metrics_server_command_serves_what_is_pushed_to_it():
    script = Path(sys.executable).parent / "skillmeat-pipeline"  # the installed command
    process = subprocess.Popen(
        [str(script), "metrics-server", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/metrics", banner)
        assert match, banner + process.stderr.read()
        base = match.group(1)
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(
            endpoint=f"{base}/v1/metrics",
            preferred_temporality={_histogram(): AggregationTemporality.DELTA},
        )
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
        provider = MeterProvider(metric_readers=[reader])
        histogram = provider.get_meter("t").create_histogram(
            SCAN_DURATION, unit="s", explicit_bucket_boundaries_advisory=[1.0, 10.0]
        )
        histogram.record(2.5, {"strategy": "api", "artifact_count_bucket": "0-5"})
        assert provider.force_flush(10_000)
        provider.shutdown()
        samples = scrape(f"{base}/metrics")
        key = labels("api", "0-5")
        assert samples[f"{SCAN_DURATION}_count"][key] == 1
        assert samples[f"{SCAN_DURATION}_sum"][key] == 2.5
        assert samples[f"{SCAN_DURATION}_bucket"][tuple(sorted([*key, ("le", "10.0")]))] == 1
        assert samples[f"{SCAN_DURATION}_bucket"][tuple(sorted([*key, ("le", "1.0")]))] == 0
        assert httpx.post(f"{base}/v1/traces", content=b"").status_code == 404
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def _histogram() -> type:
    from opentelemetry.sdk.metrics import Histogram

    return Histogram


def _histogram_push(value: float, *, start: int, temporality: int, count: int = 1) -> bytes:
    """An OTLP request with one histogram point, as a worker's exporter would send it."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    attribute = resource_metrics.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.instance.id", "worker-1"
    metric = resource_metrics.scope_metrics.add().metrics.add()
    metric.name = SCAN_DURATION
    metric.histogram.aggregation_temporality = temporality
    point = metric.histogram.data_points.add()
    point.start_time_unix_nano = start
    point.count, point.sum = count, value
    point.explicit_bounds.extend([1.0, 10.0])
    point.bucket_counts.extend([0, count, 0])
    label = point.attributes.add()
    label.key, label.value.string_value = "strategy", "api"
    return request.SerializeToString()


def test_metric_store_adds_deltas_and_differences_cumulative_points():
    with MetricsServer(port=0) as server:
        url = server.otlp_url
        headers = {"Content-Type": "application/x-protobuf"}
        cumulative, delta = 2, 1
        # one worker's cumulative series: 1 point, then 3 in total -> 3
        httpx.post(
            url, content=_histogram_push(2.0, start=1, temporality=cumulative), headers=headers
        )
        httpx.post(
            url,
            content=_histogram_push(6.0, start=1, temporality=cumulative, count=3),
            headers=headers,
        )
        # a restarted worker (new start time) and a delta push (gzip) add on top -> 5
        httpx.post(
            url, content=_histogram_push(2.0, start=2, temporality=cumulative), headers=headers
        )
        body = gzip.compress(_histogram_push(2.0, start=3, temporality=delta))
        response = httpx.post(url, content=body, headers={**headers, "Content-Encoding": "gzip"})
        assert response.status_code == 200
        assert httpx.post(url, content=b"\xff not protobuf", headers=headers).status_code == 400
        samples = scrape(server.url)
    key = (("strategy", "api"),)
    assert samples[f"{SCAN_DURATION}_count"][key] == 5
    assert samples[f"{SCAN_DURATION}_sum"][key] == 10.0
    assert samples[f"{SCAN_DURATION}_bucket"][(("le", "10.0"), *key)] == 5


def test_metrics_server_lists_the_metrics_before_any_push():
    text = MetricStore().render().decode()
    for name in HISTOGRAMS:
        assert f"# TYPE {name} histogram" in text
    assert re.search(r"^# TYPE skillmeat_github_api_calls(_total)? counter$", text, re.M)
    assert "artifact_count_bucket" not in text  # no empty series


# -- exporters from the environment ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "tracing", "metering"),
    [
        ({}, False, False),  # nothing configured: nothing exported, nothing recorded
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, True, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"}, True, False),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"},
            False,
            True,
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"},
            False,
            False,
        ),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none"}, True, False),
    ],
)
def test_exporters_follow_the_otel_variables(
    env: dict[str, str], tracing: bool, metering: bool, monkeypatch: pytest.MonkeyPatch
):
    clean_environment(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    telemetry = Telemetry.from_env()
    try:
        assert (telemetry.tracing, telemetry.metering) == (tracing, metering)
        trace_id = telemetry.record_scan(current_outcome(), run_id="r")
        assert (trace_id is not None) == tracing
    finally:
        telemetry.close(timeout_s=0.1)


def test_unsampled_traces_leave_no_trace_id(monkeypatch: pytest.MonkeyPatch):
    clean_environment(monkeypatch)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    telemetry = Telemetry.from_env()
    try:
        assert telemetry.tracing
        result = current_outcome()
        assert telemetry.record_scan(result, run_id="r") is None
    finally:
        telemetry.close(timeout_s=0.1)


def test_trace_url_in_metadata_when_a_template_is_set(stack: Stack, monkeypatch):
    keys = stack.write_sources([{"github": "tele/tiny"}])
    with MetricsServer(port=0) as server:  # stands in for a collector: traces get a 404
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{server.base_url}/v1/traces")
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
        monkeypatch.setenv(
            "SKILLMEAT_TRACE_URL_TEMPLATE", "http://jaeger.example:16686/trace/{trace_id}"
        )
        result = stack.materialize(keys)
    assert result.success
    meta = stack.materializations(result)["tele/tiny"]
    assert re.fullmatch(r"[0-9a-f]{32}", meta["otel_trace_id"])
    assert meta["otel_trace_url"] == f"http://jaeger.example:16686/trace/{meta['otel_trace_id']}"


# -- secrets ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("logger_tree")
def test_the_token_is_in_no_span_label_log_record_or_metadata(
    served_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capture: Capture,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    json_lines = io.StringIO()
    configure_logging("json", level="DEBUG", stream=json_lines)
    with open_stack(served_root, tmp_path, monkeypatch, token=TOKEN) as stack:
        keys = stack.write_sources(
            [
                {"github": "tele/medium"},  # cloned with the token
                {"github": "tele/large"},  # clone fails mid-pack: the API with the token
                {"github": "tele/nowhere"},  # 404 everywhere: a failed partition
            ]
        )
        stack.git.set_fault("tele/large", Fault.DROP_MID_PACK)
        result = stack.materialize(keys, telemetry=capture.resource())
        run_log = stack.run_log(result)
        metadata = stack.materializations(result)
        git_requests = stack.git.requests()
        api_calls = stack.github.calls
    assert not result.success
    assert {k: m["strategy"] for k, m in metadata.items()} == {
        "tele/medium": "sparse_manifest",
        "tele/large": "api",
    }
    # the token was really used, on both paths
    assert any(r.had_authorization for r in git_requests if r.repo == "tele/medium")
    assert api_calls and all(c.authenticated for c in api_calls)

    texts: list[str] = []
    for span in capture.spans():
        texts += [span.name, span.status.description or "", json.dumps(dict(span.attributes))]
        texts += [json.dumps(dict(e.attributes)) for e in span.events]
    for name, series in capture.points().items():
        texts += [name, repr(series)]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(getattr(record, "record", "")) for record in caplog.records]
    texts += [message for _, message in run_log]
    texts += [json.dumps(m, default=str) for m in metadata.values()]
    texts.append(json_lines.getvalue())
    # errors and fallbacks were logged and traced, with their URLs
    assert any("tele/nowhere" in t and "404" in t for t in texts)
    assert any("tele/large" in t and "clone failed" in t for t in texts)
    assert any("http://127.0.0.1" in t for t in texts)
    leaks = [t for t in texts if TOKEN in t or TOKEN[4:20] in t]
    assert leaks == []


def test_scrubbing_covers_what_the_fetchers_might_leak():
    captured = Capture()
    try:
        timeline = Timeline(ScanCost())
        with pytest.raises(RuntimeError), timeline.phase("clone"):
            raise RuntimeError(f"cloning https://x-access-token:{TOKEN}@example.com failed")
        result = Failed(
            source_key="a/b",
            reason=f"bad {TOKEN}",
            fallback_reason=f"because {TOKEN}",
            cost=timeline.cost(),
            strategy=Strategy.API,
        )
        telemetry = Telemetry.for_test(span_processors=[captured.processor], secrets=[TOKEN])
        telemetry.record_scan(result, run_id="r")
        telemetry.flush()
        spans = captured.spans()
        dumped = json.dumps(
            [
                [s.status.description, dict(s.attributes), [dict(e.attributes) for e in s.events]]
                for s in spans
            ]
        )
        assert TOKEN not in dumped and dumped.count("***") >= 3
        # core.secrets.redact drops a URL's whole `user:password@`, not only the token in it: the
        # clone span's status and exception event are the 4th and 5th places cleaned
        assert "x-access-token" not in dumped
        assert dumped.count("cloning https://example.com failed") == 2
    finally:
        captured.close()


# -- logs ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("logger_tree")
def test_json_logs_carry_the_strategy_record_and_scan_completion(stack: Stack):
    lines = io.StringIO()
    configure_logging("json", stream=lines)
    keys = stack.write_sources([{"github": repo} for repo in SIZES])
    result = stack.materialize(keys)
    assert result.success
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    selections = {r["source"]: r for r in records if r["message"].startswith("strategy selected")}
    assert set(selections) == set(SIZES)
    for repo, record in selections.items():
        assert record["level"] == "INFO"
        assert record["logger"] == "skillmeat_pipeline.lib.scan.pipeline"
        assert record["selected_strategy"] == STRATEGIES[repo]
        assert record["artifact_count"] == SIZES[repo]
        assert {"artifacts_root", "patterns_count", "reason"} <= set(record)
        assert record["dagster_run_id"] == result.run_id
    completed = {r["source"]: r for r in records if r.get("event") == "scan_complete"}
    assert set(completed) == set(SIZES)
    metadata = stack.materializations(result)
    for repo, record in completed.items():
        assert record["message"].startswith(
            f"Scan complete: {metadata[repo]['api_calls']} API calls for {SIZES[repo]} artifacts"
        )
        assert record["otel_trace_id"] is None  # no exporter configured: no trace
        assert record["strategy"] == STRATEGIES[repo]
    # and the Dagster run log shows each completion once
    run_log = [m for _, m in stack.run_log(result) if m.startswith("Scan complete")]
    assert len(run_log) == 3


def test_json_formatter_merges_the_record_and_keeps_its_own_fields():
    record = logging.LogRecord(
        "skillmeat_pipeline.x", logging.WARNING, __file__, 1, "m %s", ("a",), None
    )
    record.record = {"source": "o/r", "message": "not this one", "count": 3}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "m a"
    assert line["source"] == "o/r" and line["count"] == 3 and line["level"] == "WARNING"
