"""A GitHub answer of 502 or 503 is tried again with backoff within the scan's budget (SPEC §8),
then the source fails or falls back, against the emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from skillmeat_pipeline.lib.core.retry import BackoffPolicy, FailureKind
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.fetch.github.errors import ApiError
from skillmeat_pipeline.lib.scan.outcomes import Failed, Scanned
from skillmeat_pipeline.lib.scan.pipeline import scan_source
from skillmeat_pipeline.lib.scan.settings import Fetchers
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator
from skillmeat_pipeline_tests.fixtures_github import make_repo

REPO = "retry/skills"
FILES = {
    f"skills/{name}/SKILL.md": f"---\nname: {name}\ndescription: skill {name}\n---\n".encode()
    for name in ("a", "b")
}
# as the client's default policy, but the waits are recorded instead of slept
POLICY = BackoffPolicy(max_attempts=3, base_delay_s=0.5, max_delay_s=4.0)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHubEmulator]:
    root: Path = tmp_path_factory.mktemp("retries")
    make_repo(root / "retry" / "skills.git", FILES)
    with GitHubEmulator(root) as emulator:
        yield emulator


@pytest.fixture
def waits(emulator: GitHubEmulator) -> Iterator[list[float]]:
    emulator.clear_faults()
    emulator.clear_calls()
    yield []
    emulator.clear_faults()


def client(emulator: GitHubEmulator, waits: list[float], **kwargs: object) -> GitHubClient:
    return GitHubClient(
        api_url=emulator.api_url,
        raw_url=emulator.raw_url,
        retries=POLICY,
        sleep=waits.append,
        **kwargs,  # type: ignore[arg-type]
    )


def scan(github: GitHubClient) -> Scanned | Failed:
    source = SourceConfig(key=REPO, url=f"https://github.com/{REPO}.git", github=REPO)
    outcome = scan_source(source, Fetchers(github=github), api_only=True)
    assert isinstance(outcome, Scanned | Failed)
    return outcome


@pytest.mark.parametrize(("status", "host"), [(502, "rest"), (503, "rest"), (503, "raw")])
def test_one_server_error_is_tried_again_and_the_scan_succeeds(
    emulator: GitHubEmulator, waits: list[float], status: int, host: str
):
    emulator.inject_fault(REPO, status, times=1, host=host)  # type: ignore[arg-type]
    with client(emulator, waits) as github:
        outcome = scan(github)
    assert isinstance(outcome, Scanned), outcome
    assert {e.path for e in outcome.entries} == {"skills/a", "skills/b"}
    assert [c.status for c in emulator.calls if c.host == host][:2] == [status, 200]
    assert len(waits) == 1 and 0 <= waits[0] <= POLICY.base_delay_s
    rest = len(emulator.api_calls())
    # the retried REST call is one more call of the scan's budget; a raw read is not one
    assert outcome.cost.api_calls == rest == (3 if host == "rest" else 2)


def test_a_server_error_that_lasts_fails_the_scan_after_three_tries(
    emulator: GitHubEmulator, waits: list[float]
):
    emulator.inject_fault(REPO, 503, host="rest")
    with client(emulator, waits) as github:
        outcome = scan(github)
    assert isinstance(outcome, Failed)
    assert "GitHub answered 503" in outcome.reason and "retry later" in outcome.reason
    assert [c.status for c in emulator.api_calls()] == [503, 503, 503]
    assert len(waits) == 2
    assert 0 <= waits[1] <= 2 * POLICY.base_delay_s  # the wait grows


def test_retries_stop_at_the_scan_budget_with_the_server_error(
    emulator: GitHubEmulator, waits: list[float]
):
    with client(emulator, waits, call_budget=2) as github:
        stats = github.start_scan(REPO)
        github.resolve_commit(REPO, scan=stats)
        emulator.inject_fault(REPO, 502, host="rest")
        with pytest.raises(ApiError) as caught:
            github.fetch_snapshot(REPO, scan=stats)
    # the commit, then one tree call: a retry would be call 3 of a budget of 2
    assert (caught.value.status, caught.value.kind) == (502, FailureKind.TRANSIENT)
    assert stats.api_calls == 2
    assert waits == []


def test_a_client_error_is_not_tried_again(emulator: GitHubEmulator, waits: list[float]):
    emulator.inject_fault(REPO, 404, host="rest")
    with client(emulator, waits) as github, pytest.raises(ApiError) as caught:
        github.fetch_snapshot(REPO)
    assert caught.value.status == 404
    assert len(emulator.api_calls()) == 1 and waits == []
