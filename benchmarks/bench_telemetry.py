"""Overhead of tracing + metrics on a backfill: wall time with telemetry off vs on, same process.

N synthetic sources (half GitHub sources served by the emulator, half plain git URLs), indexed as a
backfill would: runs of SOURCES_PER_RUN (25) partitions each, every source re-scanned (force).
"off": no OTEL_* variable (the default). "on": real OTLP/HTTP exporters, spans to a local sink
standing in for a collector, metrics to `MetricsServer`, flushed at the end of each run.
Modes alternate; medians of the repeats are compared.

    .venv/bin/python benchmarks/bench_telemetry.py [--sources 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import yaml

import skillmeat_pipeline.lib.observability.telemetry as telemetry_module
from skillmeat_pipeline.definitions import defs
from skillmeat_pipeline.defs.index.assets import SOURCES_PER_RUN, marketplace_index
from skillmeat_pipeline.lib.services.metrics_server import MetricsServer
from skillmeat_pipeline.testing.git_server import GitHttpServer
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator
from skillmeat_pipeline_tests.fixtures_github import make_repo


class Sink(BaseHTTPRequestHandler):
    """A collector's OTLP/HTTP trace endpoint that accepts everything."""

    protocol_version = "HTTP/1.1"
    received = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Sink.lock:
            Sink.received += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-telemetry-"))
    root = tmp / "served"
    for i in range(args.sources):
        files = {
            f"skills/skill-{j}/SKILL.md": f"---\nname: s{i}-{j}\ndescription: skill {j}\n---\n"
            f"# Skill {j}\n".encode()
            for j in range(1 + i % 30)  # 1..30 artifacts: all three strategies
        }
        make_repo(root / "bench" / f"repo-{i:04d}.git", files)
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        del os.environ[name]
    recorded = {"calls": 0, "seconds": 0.0}
    original = telemetry_module.Telemetry.record_scan

    def timed(self, result, *, run_id=None):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original(self, result, run_id=run_id)
        finally:
            recorded["calls"] += 1
            recorded["seconds"] += time.perf_counter() - started

    telemetry_module.Telemetry.record_scan = timed  # type: ignore[method-assign]
    original_close = telemetry_module.Telemetry.close

    def timed_close(self, timeout_s=30.0):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original_close(self, timeout_s)
        finally:
            recorded["close_s"] = recorded.get("close_s", 0.0) + time.perf_counter() - started

    telemetry_module.Telemetry.close = timed_close  # type: ignore[method-assign]

    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    with (
        GitHttpServer(root) as git,
        GitHubEmulator(
            root, git_base_url=git.base_url, rate_limit=10**9, anonymous_rate_limit=10**9
        ) as github,
        dg.instance_for_test() as instance,
        MetricsServer(port=0) as metrics,
    ):
        sources = [
            {"github": f"bench/repo-{i:04d}"}
            if i % 2 == 0
            else {"key": f"plain/repo-{i:04d}", "url": git.url_for(f"bench/repo-{i:04d}")}
            for i in range(args.sources)
        ]
        keys = [s.get("key") or s["github"] for s in sources]
        (tmp / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}))
        os.environ.update(
            SKILLMEAT_SOURCES_FILE=str(tmp / "sources.yaml"),
            SKILLMEAT_INDEX_URL=f"sqlite:///{tmp / 'catalog.sqlite'}",
            SKILLMEAT_GITHUB_API_URL=github.api_url,
            SKILLMEAT_GITHUB_RAW_URL=github.raw_url,
            SKILLMEAT_GITHUB_GIT_URL=git.base_url,
            # the servers listen on loopback, which sources may not reach unless allowed
            SKILLMEAT_ALLOWED_PRIVATE_HOSTS="127.0.0.1",
            CLONE_TIMEOUT_SECONDS="60",
            MIN_CLONE_DISK_SPACE_MB="1",
        )
        instance.add_dynamic_partitions("marketplace_sources", keys)

        def backfill(force: bool) -> float:
            started = time.perf_counter()
            cpu_started = time.process_time()
            for start in range(0, len(keys), SOURCES_PER_RUN):
                chunk = keys[start : start + SOURCES_PER_RUN]
                config = {"force": force}
                result = dg.materialize(
                    [marketplace_index],
                    instance=instance,
                    resources=defs.resources,
                    run_config={
                        "ops": {"marketplace_index": {"ops": {"resolve_heads": {"config": config}}}}
                    },
                    tags={
                        "dagster/asset_partition_range_start": chunk[0],
                        "dagster/asset_partition_range_end": chunk[-1],
                    },
                    raise_on_error=False,
                )
                assert result.success, result.run_id
            recorded["cpu_s"] = time.process_time() - cpu_started
            return time.perf_counter() - started

        def telemetry_on(on: bool) -> None:
            if on:
                os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = (
                    f"http://127.0.0.1:{sink.server_address[1]}/v1/traces"
                )
                os.environ["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = metrics.otlp_url
            else:
                os.environ.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
                os.environ.pop("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", None)

        telemetry_on(False)
        print(f"first index of {len(keys)} sources: {backfill(False):.1f} s (not measured)")
        times: dict[str, list[float]] = {"off": [], "on": []}
        cpu: dict[str, list[float]] = {"off": [], "on": []}
        record_s: list[float] = []
        close_s: list[float] = []
        for repeat in range(args.repeats):
            for mode in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
                telemetry_on(mode == "on")
                recorded.update(calls=0, seconds=0.0, close_s=0.0)
                elapsed = backfill(True)
                times[mode].append(elapsed)
                cpu[mode].append(recorded["cpu_s"])
                if mode == "on":
                    record_s.append(recorded["seconds"])
                    close_s.append(recorded["close_s"])
                print(
                    f"repeat {repeat + 1} telemetry {mode:3}: wall {elapsed:6.2f} s, "
                    f"process CPU {recorded['cpu_s']:6.2f} s  (record_scan: {recorded['calls']} "
                    f"calls, {recorded['seconds'] * 1000:.0f} ms; flush+shutdown at run ends: "
                    f"{recorded['close_s'] * 1000:.0f} ms)"
                )
        off, on = statistics.median(times["off"]), statistics.median(times["on"])
        print(
            f"median off {off:.2f} s, on {on:.2f} s: "
            f"on/off = {on / off:.3f} ({(on / off - 1) * 100:+.1f} %)"
        )
        pairs = [b / a for a, b in zip(times["off"], times["on"], strict=True)]
        print(f"paired on/off wall ratios: {', '.join(f'{r:.3f}' for r in pairs)}")
        c_off, c_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
        print(f"process CPU median off {c_off:.2f} s, on {c_on:.2f} s: on/off = {c_on / c_off:.3f}")
        print(
            "flush+shutdown at the end of the runs: "
            f"median {statistics.median(close_s) * 1000:.0f} ms"
            f" per backfill = {statistics.median(close_s) / on * 100:.2f} % of its wall time"
        )
        print(
            f"time inside record_scan (span tree + metrics, telemetry on): median "
            f"{statistics.median(record_s) * 1000:.0f} ms per backfill = "
            f"{statistics.median(record_s) / on * 100:.2f} % of its wall time"
        )
        print(
            f"trace bytes received by the sink: {Sink.received}; "
            f"metric pushes: {metrics.store.pushes}"
        )
    sink.shutdown()


if __name__ == "__main__":
    main()
