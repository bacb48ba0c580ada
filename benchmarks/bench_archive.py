"""The GitHub API path on large repositories: raw reads vs the repository archive vs a clone.

The three largest corpus repositories and a synthetic 25,000-file repository are served from one
temporary folder by `GitHttpServer` (smart HTTP, for libgit2) and `GitHubEmulator` (REST, raw and
archive hosts), in this process, and each is indexed four ways:

  (s) API path, raw reads one at a time (how the API path read files before the archive);
  (r) API path, raw reads 8 at a time over shared connections (below SKILLMEAT_ARCHIVE_THRESHOLD);
  (a) API path, the repository archive (above the threshold): one REST call, then the archive host;
  (c) libgit2 clone: `clone_source` (bare, depth 1, in the worker process) + detection + extraction.

The API path is `read_over_api` from its first request (commit, tree) to the last catalog entry,
with a new client each run (no ETag cache). The emulator keeps an archive it built, as GitHub's
archive host does; the untimed warm-up run builds it, and (a0) measures (a) against a fresh
emulator that builds the archive while sending it. Every method must give the same entries.

Then the threshold: for N files of one repository, N concurrent raw reads against one archive read
(`read_archive` of the same N files), so the crossover can be read off; once on loopback as it is,
once with 25 ms added to every answer, about an internet round trip to GitHub's hosts (on
loopback the in-process emulator answers raw reads one at a time under the GIL, so concurrency
shows only when answers wait).

    .venv/bin/python benchmarks/bench_archive.py [--runs 3] [--no-sweep | --sweep-only]
        [--latency-ms 0,25] [--methods s,r,a,a0,c] [NAME ...]

Targets: (a) within 2x of (c) in wall time, with at most 3 REST calls.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.models import CatalogEntry
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.fetch.git.clone import CloneSettings, clone_source
from skillmeat_pipeline.lib.fetch.github.archive import ArchiveSettings, read_archive
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.scan.api_read import read_over_api
from skillmeat_pipeline.lib.scan.outcomes import Scanned
from skillmeat_pipeline.lib.scan.pipeline import start_plan
from skillmeat_pipeline.lib.scan.settings import Fetchers, ScanSettings
from skillmeat_pipeline.testing.git_server import GitHttpServer
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator, layout_bundle
from skillmeat_pipeline.testing.sample_repos import SampleRepo, build_sample_repo

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
CORPUS = ("wshobson+agents", "ComposioHQ+awesome-claude-skills", "miethe+skillmeat")
SYNTHETIC = "synthetic/files-25000"
TARGET_RATIO = 2.0
MAX_REST_CALLS = 3
SWEEP_SIZES = (10, 20, 40, 80, 160, 320)
SWEEP_REPOSITORIES = ("wshobson/agents", "miethe/skillmeat", SYNTHETIC)
CLONE = CloneSettings(timeout_s=900, min_disk_space_mb=0)
NEVER = 10**9
UNLIMITED = 10**9


@dataclass(frozen=True)
class Sample:
    seconds: float
    api_calls: int = 0
    raw_reads: int = 0
    archive_bytes: int = 0
    clone_bytes: int = 0
    entries: tuple[CatalogEntry, ...] = ()


@dataclass
class Repository:
    slug: str
    files: int
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {m: [] for m in METHODS})


@dataclass
class Servers:
    root: Path
    git: GitHttpServer
    github: GitHubEmulator


# -- the synthetic repository ----------------------------------------------------------------------


def synthetic_files(count: int = 25_000, seed: int = 25) -> dict[str, bytes]:
    """`count` files like a large real marketplace: 1,500 skills of 10 files, 1,000 agents,
    500 commands, and application code around them (3,000 artifacts). Its recursive tree listing
    stays below GitHub's 7 MB, as those of the real 15,000-29,000-file repositories did."""
    rng = random.Random(seed)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(4000)
    ]

    def text(size: int) -> str:
        out: list[str] = []
        length = 0
        while length < size:
            line = " ".join(rng.choices(words, k=rng.randint(4, 14)))
            out.append(line)
            length += len(line) + 1
        return "\n".join(out) + "\n"

    files: dict[str, bytes] = {}
    for i in range(1500):
        folder = f"skills/group-{i % 30:02d}/skill-{i:04d}"
        front = f"---\nname: skill-{i:04d}\ndescription: {text(120).splitlines()[0]}\n---\n"
        files[f"{folder}/SKILL.md"] = (front + text(1500)).encode()
        for j in range(5):
            files[f"{folder}/reference-{j}.md"] = text(2500).encode()
        for j in range(4):
            files[f"{folder}/step_{j}.py"] = text(3000).encode()
    for i in range(1000):
        front = f"---\nname: agent-{i:04d}\ndescription: {text(100).splitlines()[0]}\n---\n"
        files[f"agents/team-{i % 20:02d}/agent-{i:04d}.md"] = (front + text(2000)).encode()
    for i in range(500):
        front = f"---\ndescription: {text(80).splitlines()[0]}\n---\n"
        files[f"commands/area-{i % 10}/command-{i:04d}.md"] = (front + text(800)).encode()
    i = 0
    while len(files) < count:
        files[f"src/module-{i % 50:02d}/file_{i:05d}.py"] = text(2500).encode()
        i += 1
    return files


def build_synthetic(root: Path) -> None:
    files = synthetic_files()
    sample = SampleRepo(
        slug=SYNTHETIC,
        summary="25,000 files, 3,000 artifacts",
        on_github=True,
        files=files,
        expected={"skill": 1500, "agent": 1000, "command": 500},
    )
    path = build_sample_repo(root, sample)
    # served repositories are packed, as on GitHub; loose objects would make every clone pack
    subprocess.run(["git", "-C", str(path), "repack", "-adq"], check=True)
    subprocess.run(["git", "-C", str(path), "prune-packed"], check=True)


# -- the methods -----------------------------------------------------------------------------------


def _api(servers: Servers, slug: str, settings: ScanSettings) -> Sample:
    github = servers.github
    github.clear_calls()
    source = SourceConfig.model_validate({"github": slug})
    with GitHubClient(api_url=github.api_url, raw_url=github.raw_url) as client:
        started = time.perf_counter()
        outcome = read_over_api(start_plan(source, None), Fetchers(client, settings=settings), {})
        seconds = time.perf_counter() - started
    if not isinstance(outcome, Scanned):
        raise RuntimeError(f"{slug}: the API path failed: {outcome}")
    rest, raw = len(github.api_calls()), len(github.raw_calls())
    if (rest, raw) != (outcome.cost.api_calls, outcome.cost.raw_reads):
        raise RuntimeError(f"{slug}: the cost says {outcome.cost}, the emulator saw {rest}, {raw}")
    return Sample(
        seconds,
        api_calls=rest,
        raw_reads=raw,
        archive_bytes=outcome.cost.archive_bytes,
        entries=outcome.entries,
    )


def run_sequential(servers: Servers, slug: str) -> Sample:
    settings = ScanSettings(archive=ArchiveSettings(threshold=NEVER), raw_read_workers=1)
    return _api(servers, slug, settings)


def run_concurrent(servers: Servers, slug: str) -> Sample:
    return _api(servers, slug, ScanSettings(archive=ArchiveSettings(threshold=NEVER)))


def run_archive(servers: Servers, slug: str) -> Sample:
    return _api(servers, slug, ScanSettings(archive=ArchiveSettings(threshold=0)))


def run_archive_cold(servers: Servers, slug: str) -> Sample:
    with GitHubEmulator(servers.root, anonymous_rate_limit=UNLIMITED) as fresh:
        return run_archive(Servers(servers.root, servers.git, fresh), slug)


def run_clone(servers: Servers, slug: str) -> Sample:
    started = time.perf_counter()
    with clone_source(servers.git.url_for(slug), settings=CLONE) as cloned:
        detection = detect_artifacts(cloned.snapshot, repo_name=slug)
        entries = extract_catalog_entries(cloned.snapshot, detection, source_key=slug)
    seconds = time.perf_counter() - started
    return Sample(seconds, clone_bytes=cloned.bytes_fetched, entries=tuple(entries))


METHODS: dict[str, tuple[str, Callable[[Servers, str], Sample]]] = {
    "s": ("API, raw reads one at a time", run_sequential),
    "r": ("API, raw reads 8 at a time", run_concurrent),
    "a": ("API, archive (archive host warm)", run_archive),
    "a0": ("API, archive (built while sent)", run_archive_cold),
    "c": ("libgit2 clone + detect + extract", run_clone),
}


def _same(samples: list[Sample], reference: list[Sample]) -> bool:
    def key(entries: tuple[CatalogEntry, ...]) -> list[dict[str, Any]]:
        ignored = {"indexed_at", "upstream_url"}
        return [e.model_dump(mode="json", exclude=ignored) for e in entries]

    expected = key(reference[0].entries)
    return all(key(s.entries) == expected for s in samples)


# -- the threshold ---------------------------------------------------------------------------------


def sweep(root: Path, slugs: tuple[str, ...], runs: int, latency_ms: int) -> None:
    """N concurrent raw reads vs one archive read of the same N files, per repository.

    `latency_ms` delays every answer of the emulator (REST, raw and archive hosts alike), as an
    internet round trip to GitHub would; the waits do not hold the GIL, so concurrency shows.
    """
    print(
        f"\nthreshold, {latency_ms} ms added to every answer: N files as raw reads 8 at a time "
        f"vs the archive; median of {runs} runs, ms; archive host warm"
    )
    header = f"{'repository':<30} {'archive MB':>10} " + " ".join(
        f"{f'N={n}':>15}" for n in SWEEP_SIZES
    )
    print(header)
    print("-" * len(header))
    with GitHubEmulator(root, anonymous_rate_limit=UNLIMITED, delay_s=latency_ms / 1000) as github:
        for slug in slugs:
            with GitHubClient(api_url=github.api_url, raw_url=github.raw_url) as client:
                snapshot = client.fetch_snapshot(slug)
                markdown = [e for e in snapshot.entries if e.path.endswith(".md")]
                size = read_archive(snapshot, [], ArchiveSettings()).archive_bytes  # builds it
                cells = []
                for n in SWEEP_SIZES:
                    chosen = markdown[:: max(1, len(markdown) // n)][:n]
                    raw, archive = [], []
                    for _ in range(runs):
                        snapshot = client.fetch_snapshot(slug)
                        started = time.perf_counter()
                        snapshot.prefetch(chosen, workers=8)
                        raw.append(time.perf_counter() - started)
                        snapshot = client.fetch_snapshot(slug)
                        started = time.perf_counter()
                        read_archive(snapshot, chosen, ArchiveSettings())
                        archive.append(time.perf_counter() - started)
                    r, a = statistics.median(raw) * 1000, statistics.median(archive) * 1000
                    cells.append(f"{r:6.0f} / {a:6.0f}{'*' if r > a else ' '}")
            print(f"{slug:<30} {size / 1e6:10.1f} " + " ".join(f"{c:>15}" for c in cells))
    print("cells: raw ms / archive ms; * where the archive was faster")


# -- the report ------------------------------------------------------------------------------------


def _median(samples: list[Sample], attribute: str) -> float:
    return statistics.median(getattr(s, attribute) for s in samples)


def report(repos: list[Repository], runs: int, load_before: float) -> list[str]:
    print(f"median of {runs} runs after 1 warm-up; wall time from the first request to the entries")
    print(
        f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, "
        f"{os.cpu_count()} CPUs\n"
    )
    header = (
        f"{'repository':<34} {'method':<38} {'wall ms':>9} {'min..max ms':>15} {'x clone':>8} "
        f"{'REST':>5} {'raw':>6} {'archive bytes':>14} {'clone bytes':>12}"
    )
    print(header)
    print("-" * len(header))
    missed: list[str] = []
    for repo in repos:
        clone = _median(repo.samples["c"], "seconds")
        artifacts = len(repo.samples["c"][0].entries)
        print(f"{repo.slug}: {repo.files} files, {artifacts} artifacts")
        for method, (label, _) in METHODS.items():
            samples = repo.samples[method]
            if not samples:
                continue
            seconds = [s.seconds * 1000 for s in samples]
            ratio = _median(samples, "seconds") / clone
            archive_bytes, clone_bytes = (
                _median(samples, "archive_bytes"),
                _median(samples, "clone_bytes"),
            )
            print(
                f"{'':<34} ({method:<2}) {label:<33} {statistics.median(seconds):9.0f} "
                f"{f'{min(seconds):.0f}..{max(seconds):.0f}':>15} {ratio:7.2f}x "
                f"{_median(samples, 'api_calls'):5.0f} {_median(samples, 'raw_reads'):6.0f} "
                f"{archive_bytes:14,.0f} {clone_bytes:12,.0f}"
            )
            if not _same(samples, repo.samples["c"]):
                missed.append(f"{repo.slug} ({method}): entries differ from the clone's")
        archive = repo.samples["a"]
        ratio = _median(archive, "seconds") / clone
        verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
        print(f"{'':<34} (a)/(c) {ratio:.2f}x (target <= {TARGET_RATIO}x: {verdict})")
        if ratio > TARGET_RATIO:
            missed.append(f"{repo.slug}: (a) is {ratio:.2f}x (c) in wall time")
        most_rest = max(s.api_calls for s in archive)
        if most_rest > MAX_REST_CALLS:
            missed.append(f"{repo.slug}: (a) used {most_rest} REST calls")
    return missed


def run_all(servers: Servers, repo: Repository, chosen: set[str], runs: int) -> None:
    methods = {m: run for m, (_, run) in METHODS.items() if m in chosen}
    for run in methods.values():
        run(servers, repo.slug)  # warm-up: clone worker, page cache, archive built
    # methods interleaved run by run, so a slow moment of the machine hits all of them
    for _ in range(runs):
        for method, run in methods.items():
            repo.samples[method].append(run(servers, repo.slug))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("names", nargs="*", default=[*CORPUS, SYNTHETIC])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--no-sweep", action="store_true", help="skip the threshold tables")
    parser.add_argument("--sweep-only", action="store_true", help="only the threshold tables")
    parser.add_argument(
        "--latency-ms",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[0, 25],
        help="added latency of each threshold table (comma-separated ms)",
    )
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated subset of s,r,a,a0,c"
    )
    args = parser.parse_args()
    chosen = {m.strip() for m in args.methods.split(",")} | {"a", "c"}
    load_before = os.getloadavg()[0]
    missed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        root = Path(tmp) / "served"
        repos: list[Repository] = []
        for name in args.names:
            if name == SYNTHETIC:
                build_synthetic(root)
                slug = SYNTHETIC
            else:
                layout_bundle(args.corpus / f"{name}.bundle", root)
                slug = name.replace("+", "/", 1)
            repos.append(Repository(slug, _file_count(root, slug)))
        with (
            GitHttpServer(root) as git,
            # one emulator for every run: its anonymous rate limit must not end the benchmark
            GitHubEmulator(
                root, git_base_url=git.base_url, anonymous_rate_limit=UNLIMITED
            ) as github,
        ):
            servers = Servers(root, git, github)
            if not args.sweep_only:
                for repo in repos:
                    run_all(servers, repo, chosen, args.runs)
                missed = report(repos, args.runs, load_before)
        if not args.no_sweep:
            slugs = tuple(s for s in SWEEP_REPOSITORIES if s in {r.slug for r in repos})
            for latency in args.latency_ms:
                sweep(root, slugs, args.runs, latency)
    if missed:
        print("\ntargets missed:\n  " + "\n  ".join(missed))
    return 1 if missed else 0


def _file_count(root: Path, slug: str) -> int:
    listing = subprocess.run(
        ["git", "-C", str(root / f"{slug}.git"), "ls-tree", "-r", "--name-only", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    return len(listing.stdout.splitlines())


if __name__ == "__main__":
    sys.exit(main())
