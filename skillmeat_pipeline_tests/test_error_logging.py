"""Every error path of the fetching layer logs what failed, for which source, and what happens next.

For each fault of the git server, one run indexes two sources served by the faulty repository: a
GitHub source (the API path takes over: a WARNING) and a plain git source (no fallback: its
partition fails, an ERROR). The messages must be in the Python logger tree (as structured records)
and in the Dagster run log, each exactly once.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from skillmeat_pipeline.testing.git_server import Fault, closed_port
from skillmeat_pipeline_tests.test_telemetry import (
    Stack,
    build_served_root,
    logger_tree,  # noqa: F401 (a fixture)
    open_stack,
)

GITHUB_KEY, PLAIN_KEY = "tele/medium", "plain/medium"
FALLBACK_NEXT = "falling back to the GitHub API"  # logged once, and that record is in the run log
FAILURE_NEXT = "the partition fails and its last good rows stay"

# fault -> (the step that failed, what the failure says)
FAULTS = {
    "404": ("head lookup failed", r"the server answered 404"),
    "500": ("head lookup failed", r"the server answered 500"),
    "drop_mid_pack": ("clone failed", r"cloning http://127\.0\.0\.1:\d+/\w+/medium\.git failed"),
    # killed at the 2 s deadline, or libgit2's own 2 s idle timeout fired first
    "silent": ("head lookup failed", r"no result within 2 s|timed out"),
    "closed_port": ("head lookup failed", r"Connection refused"),
}


@pytest.fixture(scope="module")
def served_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_served_root(tmp_path_factory.mktemp("error-logging-served"))
    # the plain source is a copy: one repository may be one source only
    shutil.copytree(root / "tele" / "medium.git", root / "plain" / "medium.git")
    return root


@pytest.fixture
def stack(served_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    with open_stack(served_root, tmp_path, monkeypatch) as opened:
        # a silent server is given up on after 2 s, not the default 300
        monkeypatch.setenv("CLONE_TIMEOUT_SECONDS", "2")
        yield opened


def faulty_sources(stack: Stack, fault: str, port: int) -> list[str]:
    """Both sources, served by `tele/medium` misbehaving as `fault` (or by a closed port)."""
    if fault == "closed_port":
        closed = f"http://127.0.0.1:{port}"
        return stack.write_sources(
            [
                {"github": GITHUB_KEY, "url": f"{closed}/tele/medium.git"},
                {"key": PLAIN_KEY, "url": f"{closed}/plain/medium.git"},
            ]
        )
    for slug in ("tele/medium", "plain/medium"):
        stack.git.set_fault(slug, Fault(fault))
    return stack.write_sources(
        [{"github": GITHUB_KEY}, {"key": PLAIN_KEY, "url": stack.git.url_for("plain/medium")}]
    )


def matching(messages: list[str], *parts: str, detail: str = "") -> list[str]:
    """The messages holding every part and matching `detail` (a regular expression)."""
    return [m for m in messages if all(p in m for p in parts) and re.search(detail, m)]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fetch_failure_logs_what_failed_for_which_source_and_what_happens_next(
    stack: Stack, fault: str, caplog: pytest.LogCaptureFixture
):
    failed_step, detail = FAULTS[fault]
    caplog.set_level(logging.INFO, logger="skillmeat_pipeline")
    with closed_port() as port:
        keys = faulty_sources(stack, fault, port)
        result = stack.materialize(keys)
    assert not result.success  # the plain source's partition
    metadata = stack.materializations(result)
    assert set(metadata) == {GITHUB_KEY}
    assert metadata[GITHUB_KEY]["strategy"] == "api"
    assert re.search(detail, metadata[GITHUB_KEY]["fallback_reason"])

    ours = [r for r in caplog.records if r.name.startswith("skillmeat_pipeline")]
    warnings = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    errors = [r.getMessage() for r in ours if r.levelno == logging.ERROR]
    # the GitHub source: a WARNING naming it, the failure, and the fallback
    step = "clone failed" if failed_step == "clone failed" else "git head lookup failed"
    assert len(matching(warnings, f"source {GITHUB_KEY}:", step, FALLBACK_NEXT, detail=detail)) == 1
    assert not matching(errors, f"source {GITHUB_KEY}:")
    # the plain source: an ERROR naming it, the failure, and that its partition fails
    [error] = matching(errors, f"source {PLAIN_KEY}:", failed_step, FAILURE_NEXT, detail=detail)
    assert errors == [error]
    [record] = [r for r in ours if r.levelno == logging.ERROR]
    assert record.record["source"] == PLAIN_KEY  # structured, for the JSON formatter
    if fault == "drop_mid_pack":  # transient: each source's clone was retried once first
        for key in (GITHUB_KEY, PLAIN_KEY):
            assert len(matching(warnings, f"source {key}: clone failed", "retry 1 in")) == 1

    # the Dagster run log: the same news, each line once
    run_log = stack.run_log(result)
    run_warnings = [m for level, m in run_log if level == logging.WARNING]
    run_errors = [m for level, m in run_log if level == logging.ERROR]
    assert len(matching(run_warnings, f"source {GITHUB_KEY}:", FALLBACK_NEXT, detail=detail)) == 1
    assert matching(
        run_errors, f"source {PLAIN_KEY}:", failed_step, FAILURE_NEXT, detail=detail
    ) == [error]
    messages = [m for _, m in run_log]
    assert len(messages) == len(set(messages)), "a message shown twice in the run log"


@pytest.mark.usefixtures("logger_tree")  # Dagster sets the tree's level: put it back after
def test_with_dagster_capturing_the_logger_tree_nothing_shows_twice(
    served_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`python_logs: {managed_python_loggers: [skillmeat_pipeline], python_log_level: INFO}`."""
    python_logs = {"managed_python_loggers": ["skillmeat_pipeline"], "python_log_level": "INFO"}
    overrides = {"python_logs": python_logs}
    with open_stack(served_root, tmp_path, monkeypatch, instance_overrides=overrides) as stack:
        keys = faulty_sources(stack, "500", 0)
        result = stack.materialize(keys)
        run_log = stack.run_log(result)
    messages = [m for _, m in run_log]
    assert len(messages) == len(set(messages)), "a message shown twice in the run log"
    # the library's own records now reach the run log, with the step that logged them
    assert len(matching(messages, f"source {GITHUB_KEY}:", "500", FALLBACK_NEXT)) == 1
    assert len(matching(messages, f"source {PLAIN_KEY}:", "500", FAILURE_NEXT)) == 1
    assert len(matching(messages, "strategy selected", GITHUB_KEY)) == 1
    assert not matching(messages, f"strategy for {GITHUB_KEY}")
    assert len(matching(messages, "Scan complete:", GITHUB_KEY)) == 1
