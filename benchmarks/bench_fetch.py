"""Fetch cost of indexing a repository: libgit2 clone vs git partial + sparse clone vs the API.

Each corpus repository is served over loopback HTTP (`GitHttpServer` for git, `GitHubEmulator` for
the REST and raw hosts, both over one temporary folder of bare copies) and read three ways:

  (a) `skillmeat-pipeline detect URL`, in-process: head lookup and bare depth-1 libgit2 clone in
      the pipeline's worker subprocess, then detection and extraction;
  (b) `git clone --depth 1 --filter=blob:none --sparse URL`, `git sparse-checkout set --no-cone` of
      exactly the files that (a)'s detection and extraction read, then reading them from disk;
  (c) `skillmeat-pipeline detect --github OWNER/REPO`, in-process: REST tree plus raw reads.

Bytes are response bodies: for (a) and (b) as the git server sent them (its request log), for (c)
as the API client received them. Every run gets fresh servers, so logs and rate limits start empty;
one untimed warm-up round per repository starts the clone worker and fills the page cache.

    /work/venv/bin/python benchmarks/bench_fetch.py [--runs 5] [NAME ...]

Targets: (a) within 1.5x of (b) in wall time on the two smaller repositories; (c) at most 10 REST
calls everywhere. libgit2 cannot filter blobs (no `filter` capability, no protocol v2), so (a)
downloads every blob at HEAD while (b) downloads trees and only the files it reads.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from click.testing import CliRunner

from skillmeat_pipeline.cli import main as cli
from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.models import TreeEntry
from skillmeat_pipeline.lib.fetch.git.tree import GitTreeSnapshot, snapshot_commit
from skillmeat_pipeline.testing.git_server import GitHttpServer
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator, layout_bundle

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
DEFAULT_REPOSITORIES = ("anthropics+claude-plugins-official", "wshobson+agents", "miethe+skillmeat")
TARGET_RATIO = 1.5
RATIO_TARGET_REPOSITORIES = 2
MAX_REST_CALLS = 10
# git's own configuration files must not change what (b) does
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}
PARTIAL_CLONE = ("git", "clone", "--quiet", "--depth", "1", "--filter=blob:none", "--sparse")
_GLOB_SPECIAL = re.compile(r"([\\*?\[ ])")


@dataclass(frozen=True)
class Sample:
    seconds: float
    bytes_down: int
    requests: int
    artifacts: int | None = None
    api_calls: int = 0
    raw_reads: int = 0
    clone_ms: int = 0
    extract_ms: int = 0


@dataclass
class Repository:
    name: str  # owner+repo
    files: int
    read_set: list[str]  # files detection and extraction read, in tree order
    symlinks: set[str]
    artifacts: int
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {m: [] for m in METHODS})

    @property
    def slug(self) -> str:
        return self.name.replace("+", "/", 1)


class _RecordingSnapshot:
    """A snapshot that notes every path read: the files (b) has to check out."""

    def __init__(self, inner: GitTreeSnapshot) -> None:
        self.inner = inner
        self.commit_sha = inner.commit_sha
        self.tree_sha = inner.tree_sha
        self.entries = inner.entries
        self.read: set[str] = set()

    def read_blob(self, entry: TreeEntry) -> bytes:
        self.read.add(entry.path)
        return self.inner.read_blob(entry)


def prepare(name: str, corpus: Path, root: Path) -> Repository:
    """Lay out a served bare copy that allows partial clones, and find what detection reads."""
    bare = layout_bundle(corpus / f"{name}.bundle", root)
    for option in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant"):
        subprocess.run(["git", "-C", str(bare), "config", option, "true"], check=True, env=GIT_ENV)
    repo = pygit2.Repository(str(bare))
    try:
        snapshot = _RecordingSnapshot(snapshot_commit(repo))
        # the same calls and arguments as `detect URL`: its key is the URL's last segment
        key = name.split("+", 1)[1]
        detection = detect_artifacts(snapshot, repo_name=key)
        entries = extract_catalog_entries(snapshot, detection, source_key=key)
        symlinks = {e.path for e in snapshot.entries if e.is_symlink}
        read_set = [e.path for e in snapshot.entries if e.path in snapshot.read]
        files = sum(1 for e in snapshot.entries if e.is_blob or e.is_symlink)
    finally:
        repo.free()
    return Repository(name, files, read_set, symlinks, len(entries))


def _detect(
    args: list[str], env: dict[str, str | None]
) -> tuple[float, list[object], dict[str, int]]:
    """Seconds `detect ARGS --json --stats` took in-process, its entries and its stats."""
    started = time.perf_counter()
    result = CliRunner().invoke(cli, ["detect", *args, "--json", "--stats"], env=env)
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        raise RuntimeError(f"detect {' '.join(args)} failed: {result.stderr.strip()}")
    return seconds, json.loads(result.stdout), json.loads(result.stderr)


def run_ours(repo: Repository, root: Path) -> Sample:
    """(a): the `detect URL` code path."""
    with GitHttpServer(root) as server:
        # the server listens on loopback, which a URL may not reach unless allowed
        env = {"GITHUB_TOKEN": None, "SKILLMEAT_ALLOWED_PRIVATE_HOSTS": "127.0.0.1"}
        seconds, entries, stats = _detect([server.url_for(repo.slug)], env)
    # read after stop(): every handler has logged its request by then
    requests = server.requests(repo.slug)
    return Sample(
        seconds,
        sum(r.bytes_sent for r in requests),
        len(requests),
        artifacts=len(entries),
        clone_ms=stats["clone_ms"],
        extract_ms=stats["extract_ms"],
    )


def _literal_pattern(path: str) -> str:
    """A non-cone sparse-checkout pattern matching exactly `path` from the repository root."""
    return "/" + _GLOB_SPECIAL.sub(r"\\\1", path)


def run_git_sparse(repo: Repository, root: Path) -> Sample:
    """(b): git's blob-less shallow clone with a sparse checkout of the read set, then the reads."""
    patterns = "".join(_literal_pattern(p) + "\n" for p in repo.read_set)
    with (
        tempfile.TemporaryDirectory(prefix="bench-fetch-sparse-") as workdir,
        GitHttpServer(root) as server,
    ):
        dest = Path(workdir) / "clone"
        started = time.perf_counter()
        subprocess.run(
            [*PARTIAL_CLONE, server.url_for(repo.slug), str(dest)],
            check=True,
            env=GIT_ENV,
        )
        subprocess.run(
            ["git", "-C", str(dest), "sparse-checkout", "set", "--no-cone", "--stdin"],
            input=patterns.encode(),
            check=True,
            env=GIT_ENV,
        )
        # a file the sparse checkout left out raises here; like read_blob, a symlink reads as
        # its target
        for path in repo.read_set:
            if path in repo.symlinks:
                os.readlink(dest / path)
            else:
                (dest / path).read_bytes()
        seconds = time.perf_counter() - started
    requests = server.requests(repo.slug)
    return Sample(seconds, sum(r.bytes_sent for r in requests), len(requests))


def run_api(repo: Repository, root: Path) -> Sample:
    """(c): `detect --github OWNER/REPO`."""
    with GitHubEmulator(root) as github:
        env: dict[str, str | None] = {
            "SKILLMEAT_GITHUB_API_URL": github.api_url,
            "SKILLMEAT_GITHUB_RAW_URL": github.raw_url,
            "GITHUB_TOKEN": None,
        }
        seconds, entries, stats = _detect(["--github", repo.slug], env)
        rest, raw = len(github.api_calls()), len(github.raw_calls())
    if (rest, raw) != (stats["api_calls"], stats["raw_reads"]):
        raise RuntimeError(
            f"{repo.slug}: --stats says {stats['api_calls']} REST calls and "
            f"{stats['raw_reads']} raw reads, the emulator saw {rest} and {raw}"
        )
    return Sample(
        seconds,
        stats["bytes_fetched"],
        rest + raw,
        artifacts=len(entries),
        api_calls=rest,
        raw_reads=raw,
        extract_ms=stats["extract_ms"],
    )


METHODS: dict[str, tuple[str, Callable[[Repository, Path], Sample]]] = {
    "a": ("libgit2 clone + detect + extract", run_ours),
    "b": ("git partial+sparse clone + read", run_git_sparse),
    "c": ("GitHub API (--github)", run_api),
}


def _median(samples: list[Sample], attribute: str) -> float:
    return statistics.median(getattr(s, attribute) for s in samples)


def report(repos: list[Repository], runs: int, load_before: float) -> list[str]:
    """Print the table; return the missed targets."""
    print(
        f"median of {runs} runs after 1 warm-up; wall time of the whole fetch + read, "
        "bytes = response bodies"
    )
    load_after = os.getloadavg()[0]
    cpus = os.cpu_count()
    print(f"1-min load average {load_before:.2f} before, {load_after:.2f} after, {cpus} CPUs\n")
    header = (
        f"{'repository':<35} {'method':<36} {'wall ms':>8} {'min..max ms':>15} {'bytes down':>12} "
        f"{'HTTP req':>8} {'REST':>5} {'raw':>5} {'artifacts':>9}"
    )
    print(header)
    print("-" * len(header))
    missed = []
    # the ratio target is for the smaller repositories; the largest is measured, not judged
    judged = {r.name for r in sorted(repos, key=lambda r: r.files)[:RATIO_TARGET_REPOSITORIES]}
    for repo in repos:
        print(
            f"{repo.slug}: {repo.files} files, {repo.artifacts} artifacts, "
            f"detection reads {len(repo.read_set)} files"
        )
        for method, (label, _) in METHODS.items():
            samples = repo.samples[method]
            seconds = [s.seconds * 1000 for s in samples]
            found = {s.artifacts for s in samples if s.artifacts is not None}
            spread = f"{min(seconds):.0f}..{max(seconds):.0f}"
            print(
                f"{'':<35} ({method}) {label:<32} {statistics.median(seconds):8.1f} {spread:>15} "
                f"{_median(samples, 'bytes_down'):12,.0f} {_median(samples, 'requests'):8.0f} "
                f"{_median(samples, 'api_calls'):5.0f} {_median(samples, 'raw_reads'):5.0f} "
                f"{','.join(str(n) for n in sorted(found)) or '-':>9}"
            )
            if found - {repo.artifacts}:
                missed.append(f"{repo.slug} ({method}): {sorted(found)} artifacts")
        ours, git = repo.samples["a"], repo.samples["b"]
        ratio = _median(ours, "seconds") / _median(git, "seconds")
        bytes_ratio = _median(ours, "bytes_down") / _median(git, "bytes_down")
        verdict = "not a target"
        if repo.name in judged:
            verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
        print(
            f"{'':<35} (a)/(b) wall time {ratio:.2f}x (target <= {TARGET_RATIO}x: {verdict}); "
            f"(a)/(b) bytes {bytes_ratio:.1f}x; (a) clone {_median(ours, 'clone_ms'):.0f} ms "
            f"+ extract {_median(ours, 'extract_ms'):.0f} ms"
        )
        if repo.name in judged and ratio > TARGET_RATIO:
            missed.append(f"{repo.slug}: (a) is {ratio:.2f}x (b) in wall time")
        most_rest = max(s.api_calls for s in repo.samples["c"])
        if most_rest > MAX_REST_CALLS:
            missed.append(f"{repo.slug}: (c) used {most_rest} REST calls")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("names", nargs="*", default=DEFAULT_REPOSITORIES)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    args = parser.parse_args()
    if shutil.which("git") is None:
        parser.error("the git command is needed for (b)")
    # the machine may be shared: the load tells how far the wall times can be trusted
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        root = Path(tmp) / "served"
        repos = [prepare(name, args.corpus, root) for name in args.names]
        for repo in repos:
            for _, run in METHODS.values():
                run(repo, root)  # warm-up, not recorded
            # methods interleaved run by run, so a slow moment of the machine hits all of them
            for _ in range(args.runs):
                for method, (_, run) in METHODS.items():
                    repo.samples[method].append(run(repo, root))
        missed = report(repos, args.runs, load_before)
    if missed:
        print("\ntargets missed:\n  " + "\n  ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
