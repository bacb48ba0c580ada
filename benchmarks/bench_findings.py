"""What trust findings add to a scan, on the three largest corpus repositories.

Each bundle is cloned into a temporary bare repository. Per run, interleaved in one process:

* base: list the tree, detect artifacts, extract catalog entries (what a scan did before findings);
* with findings: the steps of `scan.artifacts.index_tree`, as every fetch path runs them: one
  per-scan blob cache shared by detection, extraction and the trust rules, which read every text
  file (≤ 256 KB) of every artifact.

Both are measured on a first index and on a re-index of the same commit with the previous entries
(every artifact unchanged: extraction reuses them and they keep their stored findings).

Times are the process's CPU time (`time.process_time`), so other work on a shared machine does not
blur the ratio. Printed per repository: medians, their ratio, the findings part (CPU) split into
rule matching and the rest (blob reads, file selection), and findings per 1,000 artifacts by
severity.

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
from skillmeat_pipeline.lib.core.files import BlobCache
from skillmeat_pipeline.lib.core.models import ArtifactKey, CatalogEntry
from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit
from skillmeat_pipeline.lib.scan.artifacts import FindingsScan, attach_findings
from skillmeat_pipeline.lib.trust import findings_for_files
from skillmeat_pipeline.lib.trust.files import read_artifact_files

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
DEFAULT_REPOSITORIES = ("wshobson+agents", "ComposioHQ+awesome-claude-skills", "miethe+skillmeat")
TARGET_RATIO = 1.3


@dataclass
class Runs:
    base: list[float] = field(default_factory=list)
    full: list[float] = field(default_factory=list)
    findings: list[float] = field(default_factory=list)
    rules: list[float] = field(default_factory=list)
    base_again: list[float] = field(default_factory=list)
    full_again: list[float] = field(default_factory=list)
    artifacts: int = 0
    files: int = 0
    text_bytes: int = 0
    severities: dict[str, int] = field(default_factory=dict)


def _base(
    repo: pygit2.Repository,
    repo_name: str,
    source_key: str,
    previous: dict[ArtifactKey, CatalogEntry] | None,
) -> float:
    started = time.process_time()
    snapshot = snapshot_commit(repo)
    detection = detect_artifacts(snapshot, repo_name=repo_name)
    extract_catalog_entries(snapshot, detection, source_key=source_key, previous=previous)
    return time.process_time() - started


def _full(
    repo: pygit2.Repository,
    repo_name: str,
    source_key: str,
    previous: dict[ArtifactKey, CatalogEntry] | None,
) -> tuple[float, float, list[CatalogEntry], FindingsScan]:
    """`index_tree`'s steps with a CPU clock between them: (total, findings part, entries)."""
    started = time.process_time()
    snapshot = BlobCache(snapshot_commit(repo))
    detection = detect_artifacts(snapshot, repo_name=repo_name)
    entries = extract_catalog_entries(snapshot, detection, source_key=source_key, previous=previous)
    extracted = time.process_time()
    entries, scan = attach_findings(snapshot, entries)
    finished = time.process_time()
    return finished - started, finished - extracted, entries, scan


def measure(repo: pygit2.Repository, name: str, runs: int) -> Runs:
    result = Runs()
    repo_name = name.split("+", 1)[1]
    source_key = name.replace("+", "/")
    for _ in range(runs):
        result.base.append(_base(repo, repo_name, source_key, None))
        total, part, entries, scan = _full(repo, repo_name, source_key, None)
        result.full.append(total)
        result.findings.append(part)
        previous = {entry.key: entry for entry in entries}

        result.base_again.append(_base(repo, repo_name, source_key, previous))
        total, _, again, rescan = _full(repo, repo_name, source_key, previous)
        result.full_again.append(total)
        assert rescan.kept == len(again), "a re-index recomputed findings"

        # the rules alone, on files already in memory
        snapshot = snapshot_commit(repo)
        detection = detect_artifacts(snapshot, repo_name=repo_name)
        files = read_artifact_files(snapshot, detection.artifacts)
        started = time.process_time()
        findings = findings_for_files(files)
        result.rules.append(time.process_time() - started)
    result.artifacts = len(entries)
    result.files = scan.files
    result.text_bytes = scan.bytes
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
            found, rules = statistics.median(r.findings), statistics.median(r.rules)
            base_again = statistics.median(r.base_again)
            full_again = statistics.median(r.full_again)
            per_1000 = {
                s: round(n * 1000 / max(r.artifacts, 1), 1) for s, n in r.severities.items()
            }
            print(
                f"{name}: {r.artifacts} artifacts, {r.files} text files, "
                f"{r.text_bytes / 1e6:.1f} MB scanned\n"
                f"  first index  detect + extract {base * 1000:7.1f} ms, + findings "
                f"{full * 1000:7.1f} ms  ratio {full / base:.2f}\n"
                f"    findings {found * 1000:.1f} ms, of which rule matching {rules * 1000:.1f} ms "
                f"(blob reads and the rest {(found - rules) * 1000:.1f} ms)\n"
                f"  re-index     detect + extract {base_again * 1000:7.1f} ms, + findings "
                f"{full_again * 1000:7.1f} ms  ratio {full_again / base_again:.2f}\n"
                f"  findings {r.severities}, per 1,000 artifacts {per_1000}"
            )
            if full / base > TARGET_RATIO:
                over.append(f"{name} (first index)")
            if full_again / base_again > TARGET_RATIO:
                over.append(f"{name} (re-index)")
    if over:
        print(f"over {TARGET_RATIO}x: {', '.join(over)}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
