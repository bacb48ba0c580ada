"""Wall time of detection plus manifest parsing of every artifact, on large corpus repositories.

Each bundle is cloned into a temporary bare repository, as a scan would have it after a clone, and
the time to list the tree, detect artifacts and extract catalog entries is measured several times.

    /work/venv/bin/python benchmarks/bench_detection.py [--runs 7] [NAME ...]

Target (SPEC-sized sources on a 2-core machine): detection + extraction under 0.3 s per repository.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pygit2

from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
DEFAULT_REPOSITORIES = ("wshobson+agents", "miethe+skillmeat")
TARGET_SECONDS = 0.3


@dataclass(frozen=True)
class Measurement:
    tree_entries: int
    artifacts: int
    kinds: dict[str, int]
    blob_reads: int  # per scan
    listing: list[float]  # seconds to list the commit's tree
    scans: list[float]  # seconds to detect and extract


def measure(repo: pygit2.Repository, name: str, runs: int) -> Measurement:
    listing: list[float] = []
    scanning: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        snapshot = snapshot_commit(repo)
        listed = time.perf_counter()
        detection = detect_artifacts(snapshot, repo_name=name.split("+", 1)[1])
        entries = extract_catalog_entries(snapshot, detection, source_key=name.replace("+", "/"))
        finished = time.perf_counter()
        listing.append(listed - started)
        scanning.append(finished - listed)
    kinds = collections.Counter(entry.artifact_type.value for entry in entries)
    return Measurement(
        len(snapshot.entries),
        len(entries),
        dict(sorted(kinds.items())),
        snapshot.blob_reads,
        listing,
        scanning,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("names", nargs="*", default=DEFAULT_REPOSITORIES)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    args = parser.parse_args()
    slow = []
    with tempfile.TemporaryDirectory(prefix="bench-detection-") as tmp:
        for name in args.names:
            target = Path(tmp) / f"{name}.git"
            bundle = args.corpus / f"{name}.bundle"
            subprocess.run(
                ["git", "clone", "--quiet", "--bare", str(bundle), str(target)], check=True
            )
            result = measure(pygit2.Repository(str(target)), name, args.runs)
            scan = statistics.median(result.scans)
            print(
                f"{name}: {result.artifacts} artifacts {result.kinds}\n"
                f"  tree entries {result.tree_entries}, blob reads per scan {result.blob_reads}\n"
                f"  tree listing      median {statistics.median(result.listing) * 1000:7.1f} ms\n"
                f"  detect + extract  median {scan * 1000:7.1f} ms"
                f"  (min {min(result.scans) * 1000:.1f}, max {max(result.scans) * 1000:.1f},"
                f" {args.runs} runs)"
            )
            if scan > TARGET_SECONDS:
                slow.append(name)
    if slow:
        print(f"slower than {TARGET_SECONDS} s: {', '.join(slow)}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
