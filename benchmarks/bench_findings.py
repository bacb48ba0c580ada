"""What trust findings add to detection + extraction, on the three largest corpus repositories.

Each bundle is cloned into a temporary bare repository. Per run, interleaved:

* base: list the tree, detect artifacts, extract catalog entries (as `bench_detection.py`);
* with findings: the same, then read every text blob (≤ 256 KB) below each artifact's root and run
  `findings_for_files` on them. Blobs are read through a per-run cache shared with detection and
  extraction (a manifest they already read is not read twice), as a scan would wire it.

Printed per repository: medians of both, their ratio, the split of the extra time into blob reads
and rule matching (and the ratio without the reads, i.e. when the blobs are already in memory, as
with deep indexing), and findings per 1,000 artifacts by severity.

    .venv/bin/python benchmarks/bench_findings.py [--runs 7] [NAME ...]

Target from the issue: detection + extraction + findings ≤ 1.3 times detection + extraction.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.models import TreeEntry
from skillmeat_pipeline.lib.fetch.git.tree import GitTreeSnapshot, snapshot_commit
from skillmeat_pipeline.lib.trust import findings_for_files
from skillmeat_pipeline.lib.trust.files import read_artifact_files

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
DEFAULT_REPOSITORIES = ("wshobson+agents", "ComposioHQ+awesome-claude-skills", "miethe+skillmeat")
TARGET_RATIO = 1.3


@dataclass
class CachingSnapshot:
    """A `TreeSnapshot` whose blobs are read once per run, whoever asks first."""

    inner: GitTreeSnapshot
    cache: dict[str, bytes] = field(default_factory=dict)

    @property
    def commit_sha(self) -> str:
        return self.inner.commit_sha

    @property
    def tree_sha(self) -> str:
        return self.inner.tree_sha

    @property
    def entries(self) -> list[TreeEntry]:
        return self.inner.entries

    def read_blob(self, entry: TreeEntry) -> bytes:
        data = self.cache.get(entry.sha)
        if data is None:
            data = self.cache[entry.sha] = self.inner.read_blob(entry)
        return data


@dataclass
class Runs:
    base: list[float] = field(default_factory=list)
    full: list[float] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)
    rules: list[float] = field(default_factory=list)
    artifacts: int = 0
    files: int = 0
    text_bytes: int = 0
    severities: dict[str, int] = field(default_factory=dict)


def measure(repo: pygit2.Repository, name: str, runs: int) -> Runs:
    result = Runs()
    repo_name = name.split("+", 1)[1]
    source_key = name.replace("+", "/")
    for _ in range(runs):
        started = time.perf_counter()
        snapshot = snapshot_commit(repo)
        detection = detect_artifacts(snapshot, repo_name=repo_name)
        extract_catalog_entries(snapshot, detection, source_key=source_key)
        result.base.append(time.perf_counter() - started)

        started = time.perf_counter()
        snapshot = CachingSnapshot(snapshot_commit(repo))
        detection = detect_artifacts(snapshot, repo_name=repo_name)
        entries = extract_catalog_entries(snapshot, detection, source_key=source_key)
        read_started = time.perf_counter()
        files = read_artifact_files(snapshot, detection.artifacts)
        rules_started = time.perf_counter()
        findings = findings_for_files(files)
        finished = time.perf_counter()
        result.full.append(finished - started)
        result.reads.append(rules_started - read_started)
        result.rules.append(finished - rules_started)
    result.artifacts = len(entries)
    result.files = len(files)
    result.text_bytes = sum(len(data) for data in files.values())
    counts = collections.Counter(finding.severity.value for finding in findings)
    result.severities = {s: counts.get(s, 0) for s in ("high", "medium", "low")}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("names", nargs="*", default=DEFAULT_REPOSITORIES)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    args = parser.parse_args()
    over = []
    with tempfile.TemporaryDirectory(prefix="bench-findings-") as tmp:
        for name in args.names:
            target = Path(tmp) / f"{name}.git"
            bundle = args.corpus / f"{name}.bundle"
            subprocess.run(
                ["git", "clone", "--quiet", "--bare", str(bundle), str(target)], check=True
            )
            r = measure(pygit2.Repository(str(target)), name, args.runs)
            base, full = statistics.median(r.base), statistics.median(r.full)
            reads, rules = statistics.median(r.reads), statistics.median(r.rules)
            per_1000 = {
                s: round(n * 1000 / max(r.artifacts, 1), 1) for s, n in r.severities.items()
            }
            print(
                f"{name}: {r.artifacts} artifacts, {r.files} text files, "
                f"{r.text_bytes / 1e6:.1f} MB scanned\n"
                f"  detect + extract             median {base * 1000:7.1f} ms\n"
                f"  detect + extract + findings  median {full * 1000:7.1f} ms"
                f"  ratio {full / base:.2f}\n"
                f"    of which blob reads {reads * 1000:.1f} ms, rules {rules * 1000:.1f} ms"
                f"  (ratio without reads {(base + rules) / base:.2f})\n"
                f"  findings {r.severities}, per 1,000 artifacts {per_1000}"
            )
            if full / base > TARGET_RATIO:
                over.append(name)
    if over:
        print(f"over {TARGET_RATIO}x: {', '.join(over)}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
