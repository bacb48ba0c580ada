"""A process killed during a clone leaves no git worker running and, after the next start, no
clone directory behind."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from skillmeat_pipeline.lib.fetch.git.sweep import (
    CLONE_DIR_PREFIX,
    clone_dir_prefix,
    sweep_stale_clones,
)
from skillmeat_pipeline.testing.git_server import Fault, GitHttpServer
from skillmeat_pipeline_tests.fixtures_github import make_repo

WAIT = 20.0  # seconds; the clone's own deadline in the child is 120 s
SLUG = "lifetime/small"

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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitHttpServer]:
    files = {"skills/a/SKILL.md": b"---\nname: a\ndescription: d\n---\n"}
    make_repo(tmp_path / "root" / f"{SLUG}.git", files)
    with GitHttpServer(tmp_path / "root") as served:
        yield served


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def ended_within(pid: int, timeout_s: float) -> bool:
    """Whether process `pid` (not necessarily a child) ends within `timeout_s`: a pidfd becomes
    readable when its process exits, so this waits for the event itself."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout_s)
        return bool(readable)
    finally:
        os.close(pidfd)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfds")
def test_a_worker_dies_with_its_killed_parent_and_its_directory_is_swept(
    server: GitHttpServer, tmp_path: Path
):
    clone_dir = tmp_path / "clones"
    clone_dir.mkdir()
    server.set_fault(SLUG, Fault.HOLD, method="POST")  # the pack never comes: mid-clone
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD, server.url_for(SLUG), str(clone_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.wait_held(SLUG, WAIT), "the clone never reached the server"
        [worker] = children(parent.pid)
        [left] = list(clone_dir.iterdir())
        assert left.name.startswith(clone_dir_prefix(parent.pid))
        parent.send_signal(signal.SIGKILL)
        parent.wait(WAIT)
        # it would otherwise go on until its deadline + 5 s: 125 s from now
        assert ended_within(worker, WAIT), "the git worker outlived its parent"
    finally:
        server.release(SLUG)
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert list(clone_dir.iterdir()) == [left]  # a killed parent removes nothing
    assert sweep_stale_clones(clone_dir) == [left]
    assert list(clone_dir.iterdir()) == []


def test_the_sweep_removes_only_directories_of_ended_processes_of_this_host(tmp_path: Path):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    running = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    try:
        names = {
            "ended": f"{clone_dir_prefix(ended.pid)}abc_12",
            "running": f"{clone_dir_prefix(running.pid)}abc_12",
            "mine": f"{clone_dir_prefix()}abc_12",
            "other host": f"{CLONE_DIR_PREFIX}elsewhere-{ended.pid}-abc_12",
            "old name": f"{CLONE_DIR_PREFIX}abc_1234",
            "unrelated": clone_dir_prefix(ended.pid).replace("clone", "bundle") + "abc_12",
        }
        for name in names.values():
            (tmp_path / name).mkdir()
            (tmp_path / name / "objects").mkdir()
        file_name = f"{clone_dir_prefix(ended.pid)}file_1"
        (tmp_path / file_name).write_text("not a folder")

        assert sweep_stale_clones(tmp_path) == [tmp_path / names["ended"]]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [n for k, n in names.items() if k != "ended"] + [file_name]
        )
    finally:
        running.communicate(b"\n", timeout=WAIT)
