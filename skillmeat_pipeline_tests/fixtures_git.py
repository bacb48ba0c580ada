"""Fixtures for tests that clone over a local git smart-HTTP server.

conftest.py loads them for every test module.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skillmeat_pipeline.testing.git_server import GitHttpServer, add_repository

OFFICIAL = "anthropics/claude-plugins-official"
SMALL = "microsoft/playwright-mcp"
# SMALL's commit, plus branch `dev` (a second commit), tags `v0` (lightweight, on main) and `v1`
# (annotated, on dev)
REFS = "test/refs"
# REFS with HEAD on `dev`
DEV_DEFAULT = "test/dev-default"

_IDENTITY = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **_IDENTITY},
    )
    return result.stdout.strip()


@pytest.fixture(scope="session")
def git_server_root(
    tmp_path_factory: pytest.TempPathFactory, corpus_bare_repo: Callable[[str], Path]
) -> Path:
    """A folder of bare repositories for `GitHttpServer`: OFFICIAL, SMALL, REFS and DEV_DEFAULT."""
    root = tmp_path_factory.mktemp("git-server-root")
    add_repository(root, OFFICIAL, corpus_bare_repo("anthropics+claude-plugins-official"))
    add_repository(root, SMALL, corpus_bare_repo("microsoft+playwright-mcp"))
    refs = add_repository(root, REFS, corpus_bare_repo("microsoft+playwright-mcp"))
    main = _git(refs, "rev-parse", "refs/heads/main")
    dev = _git(refs, "commit-tree", f"{main}^{{tree}}", "-p", main, stdin="dev\n")
    _git(refs, "update-ref", "refs/heads/dev", dev)
    _git(refs, "tag", "v0", main)
    _git(refs, "tag", "-a", "v1", "-m", "v1", dev)
    dev_default = add_repository(root, DEV_DEFAULT, refs)
    _git(dev_default, "symbolic-ref", "HEAD", "refs/heads/dev")
    return root


@pytest.fixture
def git_server(git_server_root: Path) -> Iterator[GitHttpServer]:
    """A running server over `git_server_root`, without faults or auth; stopped after the test."""
    with GitHttpServer(git_server_root) as server:
        yield server
