"""The fault matrix of untrusted input (issue 13): each fault on the clone path and the API path.

For each fault a source is first indexed from a good commit, then the fault is applied and the
source is indexed again with the pipeline's own steps (`scan_source`, `write`) into a SQLite
catalog, beside a neighbour source indexed in the same round. Printed per fault and path:

* rows lost: live rows of the good commit (and of the neighbour) that the faulty round removed or
  blanked although their files are still there (must be 0);
* outcome and the time until the round gave up or finished, against the configured clone timeout;
* leaked processes: git workers alive after the round once the idle pool is closed (or, for the
  SIGKILL case, the killed process's worker) (must be 0);
* leaked directories: `skillmeat-clone-*` folders left in the clone location after the round (for
  the SIGKILL case: after the next process's sweep) (must be 0).

Then the webhook receiver under 16 slow connections from one address, and the peak RSS of a
process that lists the tree bomb, without a bound (as before) and with the default bound.

    PYTHONPATH=. .venv/bin/python benchmarks/fault_matrix.py
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pygit2

from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.core.untrusted import max_tree_entries
from skillmeat_pipeline.lib.fetch.git.clone import CloneSettings
from skillmeat_pipeline.lib.fetch.git.pool import WORKER_POOL
from skillmeat_pipeline.lib.fetch.git.sweep import CLONE_DIR_PREFIX, sweep_stale_clones
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.scan.api_read import read_over_api as api_step
from skillmeat_pipeline.lib.scan.cloning import clone as clone_step
from skillmeat_pipeline.lib.scan.outcomes import SourceOutcome, SourcePlan
from skillmeat_pipeline.lib.scan.pipeline import resolve, route, scan_source, start_plan
from skillmeat_pipeline.lib.scan.settings import Fetchers, ScanSettings
from skillmeat_pipeline.lib.scan.write import write
from skillmeat_pipeline.lib.services.webhooks import WebhookReceiver, WebhookServer
from skillmeat_pipeline.testing.git_server import Fault, GitHttpServer
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator
from skillmeat_pipeline_tests.fixtures_github import RawTree, write_raw_tree
from skillmeat_pipeline_tests.test_webhooks import post, push_payload

_TMP = Path(tempfile.mkdtemp(prefix="fault-matrix-"))
CLONES = _TMP / "clones"  # every clone of this process; counted after each case

CLONE_TIMEOUT_S = 30.0
SECRET = "fault-matrix-secret"


def skill(name: str) -> bytes:
    return f"---\nname: {name}\ndescription: skill {name}\n---\n# {name}\n".encode()


GOOD: RawTree = {b"skills": {f"good-{i}".encode(): {b"SKILL.md": skill(f"g{i}")} for i in range(3)}}


def with_names(names: list[bytes]) -> Callable[[pygit2.Repository], RawTree]:
    def tree(_repo: pygit2.Repository) -> RawTree:
        skills = dict(GOOD[b"skills"])  # type: ignore[arg-type]
        skills |= {name: {b"SKILL.md": skill("bad")} for name in names}
        return {b"skills": skills}

    return tree


def bomb(repo: pygit2.Repository) -> RawTree:
    leaf = write_raw_tree(repo, {b"f%04d" % i: b"x" for i in range(1100)})
    return {b"bomb": write_raw_tree(repo, {b"d%03d" % i: leaf for i in range(1000)}), **GOOD}


def push(repo: pygit2.Repository, tree: RawTree | Callable[[pygit2.Repository], RawTree]) -> str:
    signature = pygit2.Signature("t", "t@example.com", 1_700_000_000, 0)
    parents = [] if repo.head_is_unborn else [repo.head.target]
    tree_id = write_raw_tree(repo, tree(repo) if callable(tree) else tree)
    return str(repo.create_commit("refs/heads/main", signature, signature, "m", tree_id, parents))


@dataclass
class Row:
    fault: str
    path: str
    outcome: str
    rows_lost: int
    seconds: float
    limit: str
    processes: int
    directories: int


class Matrix:
    def __init__(self, root: Path, git: GitHttpServer, github: GitHubEmulator) -> None:
        self.root, self.git, self.github = root, git, github
        self.catalog = Catalog.from_url(f"sqlite:///{_TMP / 'index.sqlite'}")
        self.catalog.migrate()
        self.client = GitHubClient(api_url=github.api_url, raw_url=github.raw_url)
        CLONES.mkdir()
        settings = ScanSettings(
            clone=CloneSettings(timeout_s=CLONE_TIMEOUT_S, min_disk_space_mb=0, clone_dir=CLONES),
            force=True,
        )
        self.fetchers = Fetchers(github=self.client, settings=settings)
        self.rows: list[Row] = []
        self.neighbour = self.new_source("clone", GOOD)

    def new_source(self, path: str, tree: RawTree) -> tuple[SourceConfig, pygit2.Repository, str]:
        slug = f"matrix/r{uuid.uuid4().hex[:10]}"
        repo = pygit2.init_repository(str(self.root / f"{slug}.git"), bare=True)
        repo.set_head("refs/heads/main")
        push(repo, tree)
        if path == "api":
            source = SourceConfig(key=slug, url=f"https://github.com/{slug}.git", github=slug)
        else:
            source = SourceConfig(key=f"clone/{slug}", url=self.git.url_for(slug))
        self.catalog.upsert_sources([source])
        self.index(source, path)
        return source, repo, slug

    def index(self, source: SourceConfig, path: str) -> SourceOutcome:
        outcome = scan_source(
            source,
            self.fetchers,
            record=self.catalog.get_source(source.key),
            previous=self.catalog.previous_entries(source.key),
            api_only=path == "api",
        )
        return write(self.catalog, outcome).outcome

    def live(self, *sources: SourceConfig) -> set[tuple[str, str]]:
        return {(s.key, e.path) for s in sources for e in self.catalog.entries(s.key)}

    def measure(
        self,
        fault: str,
        path: str,
        source: SourceConfig,
        expected: set[tuple[str, str]],
        run: Callable[[], SourceOutcome],
        limit: str = f"clone {CLONE_TIMEOUT_S:g} s",
    ) -> None:
        neighbour = self.neighbour[0]
        expected = expected | self.live(neighbour)
        started = time.monotonic()
        outcome = run()
        self.index(neighbour, "clone")
        seconds = time.monotonic() - started
        lost = expected - self.live(source, neighbour)
        WORKER_POOL.close_idle()
        self.rows.append(
            Row(
                fault,
                path,
                outcome.status.value,
                len(lost),
                seconds,
                limit,
                len(workers_of(os.getpid())),
                len(clone_dirs(CLONES)),
            )
        )


def workers_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"_worker_main" in cmdline:
                found.append(int(child))
    return found


def clone_dirs(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(CLONE_DIR_PREFIX)]


def tree_faults(matrix: Matrix) -> None:
    cases: list[tuple[str, Callable[[pygit2.Repository], RawTree]]] = [
        ("non-UTF-8 names", with_names([b"caf\xe9", b"r\xe9sum\xe9"])),
        ("crafted paths (.. \\n \\r ESC /)", with_names([b"..", b"a\nb", b"\x1b[2J", b"x/../y"])),
        (f"tree bomb (1.1 M paths, bound {max_tree_entries()})", bomb),
    ]
    for fault, tree in cases:
        for path in ("clone", "api"):
            source, repo, _ = matrix.new_source(path, GOOD)
            before = matrix.live(source)
            push(repo, tree)
            matrix.measure(fault, path, source, before, lambda s=source, p=path: matrix.index(s, p))


def server_error_once(matrix: Matrix) -> None:
    for path in ("clone", "api"):
        source, _, slug = matrix.new_source(path, GOOD)
        before = matrix.live(source)
        if path == "clone":
            matrix.git.set_fault(slug, Fault.SERVER_ERROR, method="POST", times=1)
            fault = "git 500 once (clone)"
        else:
            matrix.github.inject_fault(slug, 502, times=1)
            fault = "REST 502 once"
        matrix.measure(fault, path, source, before, lambda s=source, p=path: matrix.index(s, p))


def older_run_finishes_last(matrix: Matrix) -> None:
    for path in ("clone", "api"):
        source, repo, _ = matrix.new_source(path, GOOD)
        push(repo, with_names([b"older"]))
        older = start_plan(source, matrix.catalog.get_source(source.key))
        push(repo, with_names([b"older", b"newer"]))
        newer = matrix.index(source, path)
        assert newer.status.value == "scanned", newer
        expected = matrix.live(source)

        def late(plan: SourcePlan = older, p: str = path) -> SourceOutcome:
            if p == "api":
                return write(matrix.catalog, api_step(plan, matrix.fetchers, {})).outcome
            resolved = resolve(plan, matrix.fetchers)
            assert isinstance(resolved, SourcePlan)
            scanned = clone_step(route(resolved, matrix.fetchers), matrix.fetchers, {})
            assert not isinstance(scanned, SourcePlan)
            return write(matrix.catalog, scanned).outcome  # type: ignore[arg-type]

        matrix.measure("older run finishes last", path, source, expected, late)


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from skillmeat_pipeline.lib.fetch.git.clone import CloneSettings, clone_source
    settings = CloneSettings(timeout_s=120, min_disk_space_mb=0, clone_dir=Path(sys.argv[2]))
    with clone_source(sys.argv[1], settings=settings):
        pass
    """
)


def sigkill_mid_clone(matrix: Matrix) -> None:
    source, _, slug = matrix.new_source("clone", GOOD)
    clone_dir = _TMP / "killed"
    clone_dir.mkdir()
    matrix.git.set_fault(slug, Fault.HOLD, method="POST")
    child = subprocess.Popen([sys.executable, "-c", CHILD, source.url, str(clone_dir)])
    try:
        assert matrix.git.wait_held(slug, 60)
        [worker] = [
            int(c)
            for task in Path(f"/proc/{child.pid}/task").iterdir()
            for c in (task / "children").read_text().split()
        ]
        pidfd = os.pidfd_open(worker)
        started = time.monotonic()
        child.send_signal(signal.SIGKILL)
        child.wait()
        ended = bool(select.select([pidfd], [], [], 130)[0])
        seconds = time.monotonic() - started
        os.close(pidfd)
    finally:
        matrix.git.release(slug)
        matrix.git.set_fault(slug, None)
    left = len(clone_dirs(clone_dir))
    swept = len(sweep_stale_clones(clone_dir))
    matrix.rows.append(
        Row(
            f"run process SIGKILLed mid-clone ({left} dir left, {swept} swept)",
            "clone",
            "worker ended" if ended else "worker alive",
            0,
            seconds,
            "clone 120 s (+5 s orphan grace)",
            0 if ended else 1,
            len(clone_dirs(clone_dir)),
        )
    )
    matrix.rows.append(
        Row("run process SIGKILLed mid-clone", "api", "n/a: no worker", 0, 0, "-", 0, 0)
    )


def slow_webhook_clients(matrix: Matrix) -> None:
    receiver = WebhookReceiver(matrix.catalog, SECRET)
    with WebhookServer(receiver, header_deadline_s=10.0) as server:
        attackers = []
        for _ in range(16):
            sock = socket.create_connection(
                ("127.0.0.1", server.port), timeout=30, source_address=("127.0.0.2", 0)
            )
            sock.sendall(b"P")
            attackers.append(sock)
        accepted = 0
        for _ in range(10):
            status, _ = post(server.url, push_payload("matrix/unknown"), secret=SECRET)
            accepted += status != 503
        started = time.monotonic()
        answers = []
        for sock in attackers:
            data = sock.recv(100)
            answers.append(data.split(b"\r\n", 1)[0].decode())
            sock.close()
        cut = time.monotonic() - started
    print(
        f"\nwebhook, 16 connections from one address sending 1 header byte: signed deliveries "
        f"answered (not 503) {accepted}/10; the slow connections got "
        f"{answers.count('HTTP/1.1 503 Service Unavailable')} x 503 at once and "
        f"{answers.count('HTTP/1.1 408 Request Timeout')} x 408 within {cut:.1f} s "
        "(header deadline 10 s)"
    )


RSS_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import pygit2
    from skillmeat_pipeline.lib.core.untrusted import TreeTooLargeError
    from skillmeat_pipeline.lib.fetch.git.tree import list_tree

    def peak_mb():  # VmHWM: this process's peak RSS (ru_maxrss keeps the parent's across exec)
        line = next(l for l in Path("/proc/self/status").read_text().splitlines()
                    if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    tree = pygit2.Repository(sys.argv[1]).head.peel(pygit2.Tree)
    before = peak_mb()
    limit = int(sys.argv[2]) if sys.argv[2] else None
    try:
        outcome = f"{len(list_tree(tree, max_entries=limit))} entries listed"
    except TreeTooLargeError:
        outcome = "stopped at the bound"
    print(f"peak RSS {before:.0f} MB before the listing, {peak_mb():.0f} MB after: {outcome}")
    """
)


def bomb_memory(root: Path) -> None:
    repo_path = root / "matrix" / "bomb-memory.git"
    repo = pygit2.init_repository(str(repo_path), bare=True)
    repo.set_head("refs/heads/main")
    push(repo, bomb)
    print("\npeak RSS of one process listing the tree bomb (clone path's `list_tree`):")
    for label, limit in (("no bound (as before)", str(10**9)), ("default bound", "")):
        result = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, str(repo_path), limit],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"  {label:<22} {result.stdout.strip()}")


@contextmanager
def servers() -> Iterator[tuple[Path, GitHttpServer, GitHubEmulator]]:
    root = _TMP / "served"
    (root / "matrix").mkdir(parents=True)
    with GitHttpServer(root) as git, GitHubEmulator(root, git_base_url=git.base_url) as github:
        yield root, git, github


def main() -> None:
    with servers() as (root, git, github):
        matrix = Matrix(root, git, github)
        tree_faults(matrix)
        server_error_once(matrix)
        older_run_finishes_last(matrix)
        sigkill_mid_clone(matrix)
        header = f"{'fault':<44} {'path':<6} {'outcome':<12} {'rows lost':>9} {'time':>8}  "
        print(header + f"{'limit':<30} {'procs':>5} {'dirs':>4}")
        for r in matrix.rows:
            print(
                f"{r.fault:<44} {r.path:<6} {r.outcome:<12} {r.rows_lost:>9} {r.seconds:>7.2f}s  "
                f"{r.limit:<30} {r.processes:>5} {r.directories:>4}"
            )
        slow_webhook_clients(matrix)
        bomb_memory(root)
        matrix.client.close()
        matrix.catalog.dispose()


if __name__ == "__main__":
    main()
