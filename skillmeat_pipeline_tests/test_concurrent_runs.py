"""Two real runs of `marketplace_index` on one source, the older one finishing last.

The git server holds the older run's pack request (a `HOLD` fault) until the newer run, started
after a push, has written its scan; then the older run goes on and must not replace that scan.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pygit2
import pytest

from skillmeat_pipeline.testing.git_server import Fault
from skillmeat_pipeline_tests.fixtures_github import RawTree, write_raw_tree
from skillmeat_pipeline_tests.fixtures_pipeline import Pipeline

WAIT = 60.0  # seconds before the test gives up on a run or a request that should come


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def push(repo: pygit2.Repository, skills: list[str]) -> str:
    """A commit on `main` holding one skill folder per name; its SHA."""
    tree: RawTree = {
        b"skills": {
            name.encode(): {
                b"SKILL.md": f"---\nname: {name}\ndescription: skill {name}\n---\n".encode()
            }
            for name in skills
        }
    }
    signature = pygit2.Signature("Test", "test@example.com", 1_700_000_000 + len(skills), 0)
    parents = [] if repo.head_is_unborn else [repo.head.target]
    oid = repo.create_commit(
        "refs/heads/main", signature, signature, "push", write_raw_tree(repo, tree), parents
    )
    return str(oid)


def test_an_older_run_finishing_last_does_not_replace_the_newer_scan(
    pipeline: Pipeline, served_root: Path
):
    slug = f"race/skills-{uuid.uuid4().hex[:8]}"
    repo = pygit2.init_repository(str(served_root / f"{slug}.git"), bare=True)
    repo.set_head("refs/heads/main")
    push(repo, ["a", "b", "c"])
    [key] = pipeline.write_sources([{"key": "race/skills", "url": pipeline.git.url_for(slug)}])
    assert pipeline.materialize([key]).success

    older_commit = push(repo, ["a", "b", "c", "d"])
    # the older run's pack request waits at the server until released
    pipeline.git.set_fault(slug, Fault.HOLD, method="POST", times=1)
    older: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: older.update(result=pipeline.materialize([key])), daemon=True
    )
    thread.start()
    try:
        assert pipeline.git.wait_held(slug, WAIT), "the older run never reached its clone"
        newer_commit = push(repo, ["a", "b", "c", "d", "e"])
        newer = pipeline.materialize([key])
        assert newer.success
        assert pipeline.materializations(newer)[key]["commit_sha"] == newer_commit
    finally:
        pipeline.git.release(slug)
        thread.join(WAIT)
    assert not thread.is_alive()

    result = older["result"]
    assert result.success  # superseded is not a failure
    metadata = pipeline.materializations(result)[key]
    assert (metadata["scan_status"], metadata["commit_sha"]) == ("superseded", older_commit)
    catalog = pipeline.catalog()
    record = catalog.get_source(key)
    assert (record.last_indexed_commit_sha, record.last_status) == (newer_commit, "scanned")
    entries = catalog.entries(key, include_removed=True)
    assert {e.path: e.status for e in entries} == {
        "skills/a": "unchanged",
        "skills/b": "unchanged",
        "skills/c": "unchanged",
        "skills/d": "new",
        "skills/e": "new",
    }
    assert {e.indexed_commit for e in entries} == {newer_commit}
    superseded = [m for _, m in pipeline.run_log(result) if "was not written" in m]
    assert len(superseded) == 1 and key in superseded[0]
