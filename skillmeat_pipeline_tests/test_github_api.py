"""The GitHub API path over real HTTP on loopback, against the emulator."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from skillmeat_pipeline.lib.core.addresses import GITHUB_URLS
from skillmeat_pipeline.lib.core.retry import FailureKind
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.fetch.github.errors import ApiBudgetExceeded, ApiError, RateLimited
from skillmeat_pipeline.lib.fetch.github.etags import CachedResponse, MemoryEtagCache
from skillmeat_pipeline.lib.fetch.github.snapshot import git_blob_sha
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator
from skillmeat_pipeline_tests.fixtures_github import (
    TOKEN,
    layout_corpus,
    make_repo,
    manifest_entries,
    open_bare,
)

PLUGINS = "anthropics/claude-plugins-official"  # 153 artifacts, 680 tree entries


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = layout_corpus(
        tmp_path_factory.mktemp("github"),
        ["obra+superpowers", "anthropics+claude-plugins-official"],
    )
    make_repo(
        root / "octo" / "odd.git",
        {"docs/a b#c?%.md": b"# odd\n", "caf\u00e9/SKILL.md": "---\nname: \u00e9\n---\n".encode()},
        symlinks={"link.md": "docs/a b#c?%.md"},
    )
    return root


@pytest.fixture
def emulator(root: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(root) as emulator:
        yield emulator


def _client(emulator: GitHubEmulator, **kwargs: object) -> GitHubClient:
    settings: dict = {
        "api_url": emulator.api_url,
        "raw_url": emulator.raw_url,
        "token": Secret(TOKEN),
    }
    return GitHubClient(**(settings | kwargs))


@pytest.fixture
def client(emulator: GitHubEmulator) -> Iterator[GitHubClient]:
    with _client(emulator) as client:
        yield client


@pytest.mark.parametrize("full_name", ["obra/superpowers", PLUGINS, "octo/odd"])
def test_snapshot_equals_the_clone_snapshot(
    root: Path, emulator: GitHubEmulator, client: GitHubClient, full_name: str
) -> None:
    expected = snapshot_commit(open_bare(root, full_name))
    snapshot = client.fetch_snapshot(full_name)
    assert snapshot.commit_sha == expected.commit_sha
    assert snapshot.tree_sha == expected.tree_sha
    assert snapshot.entries == expected.entries
    assert snapshot.stats.api_calls == 2
    assert snapshot.stats.raw_reads == 0
    assert len(emulator.api_calls(counted_only=True)) == 2


def test_full_scan_of_a_153_artifact_source_stays_within_ten_rest_calls(
    root: Path, emulator: GitHubEmulator, client: GitHubClient
) -> None:
    git = open_bare(root, PLUGINS)
    scan = client.start_scan(PLUGINS)
    info = client.repository(PLUGINS, scan=scan)
    snapshot = client.fetch_snapshot(PLUGINS, info.default_branch, scan=scan)
    manifests = manifest_entries(snapshot.entries)
    contents = {entry.path: snapshot.read_blob(entry) for entry in manifests}

    assert len(manifests) == 301
    assert all(contents[e.path] == git[e.sha].data for e in manifests)
    assert all(snapshot.size_of(e) == len(contents[e.path]) for e in manifests)
    rest = emulator.api_calls()
    assert len(rest) == 3 <= 10
    assert all(call.counted and call.authenticated for call in rest)
    assert len(emulator.raw_calls()) == 301
    assert (scan.api_calls, scan.raw_reads, scan.not_modified) == (3, 301, 0)
    assert scan.bytes_fetched > sum(len(data) for data in contents.values())
    assert info.full_name == PLUGINS
    assert info.size > 0
    totals = client.totals
    assert (totals.scans, totals.api_calls, totals.raw_reads) == (1, 3, 301)
    assert totals.bytes_fetched == scan.bytes_fetched


@pytest.mark.usefixtures("root")
def test_odd_paths_and_symlinks_read_exact_bytes(client: GitHubClient) -> None:
    snapshot = client.fetch_snapshot("octo/odd")
    by_path = {entry.path: entry for entry in snapshot.entries}
    assert snapshot.read_blob(by_path["docs/a b#c?%.md"]) == b"# odd\n"
    assert snapshot.read_blob(by_path["caf\u00e9/SKILL.md"]) == "---\nname: \u00e9\n---\n".encode()
    assert snapshot.read_blob(by_path["link.md"]) == b"docs/a b#c?%.md"
    with pytest.raises(ValueError, match="not a file"):
        snapshot.read_blob(by_path["docs"])


def test_blob_that_does_not_match_its_sha_is_rejected(client: GitHubClient) -> None:
    snapshot = client.fetch_snapshot("obra/superpowers")
    readme = next(e for e in snapshot.entries if e.path == "README.md")
    with pytest.raises(ApiError, match="does not match blob") as caught:
        snapshot.read_blob(replace(readme, sha=git_blob_sha(b"something else")))
    assert caught.value.kind is FailureKind.TRANSIENT


def test_concurrent_blob_reads_are_all_counted(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    snapshot = client.fetch_snapshot("obra/superpowers")
    manifests = manifest_entries(snapshot.entries)
    with ThreadPoolExecutor(max_workers=8) as pool:
        contents = list(pool.map(snapshot.read_blob, manifests))
    assert [git_blob_sha(data) for data in contents] == [e.sha for e in manifests]
    assert snapshot.stats.raw_reads == len(manifests) == len(emulator.raw_calls())


@pytest.mark.parametrize(
    ("full_name", "limit", "calls"),
    [("obra/superpowers", 100, 5), (PLUGINS, 600, 4), (PLUGINS, 500, 10)],
)
def test_truncated_tree_is_completed_within_budget(
    root: Path, full_name: str, limit: int, calls: int
) -> None:
    expected = snapshot_commit(open_bare(root, full_name))
    with (
        GitHubEmulator(root, tree_entry_limit=limit) as emulator,
        _client(emulator) as client,
    ):
        snapshot = client.fetch_snapshot(full_name)
        rest = emulator.api_calls()
    assert snapshot.entries == expected.entries
    assert snapshot.stats.api_calls == len(rest) == calls <= 10
    # the first tree answer really was cut
    assert rest[1].query == "recursive=1"
    assert len(expected.entries) > limit


def test_truncated_tree_beyond_the_budget_stops_at_the_budget(root: Path) -> None:
    with (
        GitHubEmulator(root, tree_entry_limit=100) as emulator,
        _client(emulator) as client,
    ):
        with pytest.raises(ApiBudgetExceeded, match="budget of 10 GitHub REST calls") as caught:
            client.fetch_snapshot(PLUGINS)
        rest = emulator.api_calls(counted_only=True)
    assert len(rest) == 10
    assert caught.value.kind is FailureKind.PERMANENT
    assert PLUGINS in str(caught.value)


def test_smaller_budget_is_never_exceeded(emulator: GitHubEmulator, client: GitHubClient) -> None:
    scan = client.start_scan("obra/superpowers", budget=1)
    with pytest.raises(ApiBudgetExceeded):
        client.fetch_snapshot("obra/superpowers", scan=scan)
    assert scan.api_calls == 1
    assert len(emulator.api_calls()) == 1


def test_second_scan_uses_etags_and_costs_nothing(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    first = client.start_scan("obra/superpowers")
    client.repository("obra/superpowers", scan=first)
    client.fetch_snapshot("obra/superpowers", scan=first)
    remaining = emulator.rate_limit_remaining(TOKEN)
    emulator.clear_calls()

    second = client.start_scan("obra/superpowers")
    client.repository("obra/superpowers", scan=second)
    snapshot = client.fetch_snapshot("obra/superpowers", scan=second)

    assert first.api_calls == 3
    assert (second.api_calls, second.not_modified, second.cache_hits) == (0, 2, 1)
    assert emulator.rate_limit_remaining(TOKEN) == remaining
    assert [(c.status, c.counted) for c in emulator.api_calls()] == [(304, False), (304, False)]
    assert snapshot.entries == snapshot_commit(open_bare(emulator.root, "obra/superpowers")).entries
    assert client.totals.not_modified == 2


def test_exhausted_rate_limit_refuses_to_start_a_scan(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    emulator.set_rate_limit(10, token=TOKEN, reset_in_s=1800)
    client.fetch_snapshot("obra/superpowers")  # 2 calls: 8 left, fewer than a scan's budget
    emulator.clear_calls()
    with pytest.raises(RateLimited) as caught:
        client.fetch_snapshot(PLUGINS)
    error = caught.value
    assert emulator.calls == []
    assert "not started" in str(error)
    assert "8 of 5000 calls left" in str(error)
    assert error.kind is FailureKind.TRANSIENT
    expected_reset = datetime.now(UTC) + timedelta(seconds=1800)
    assert abs((error.reset_at - expected_reset).total_seconds()) < 5
    assert 1790 < error.retry_after_s <= 1800
    # a smaller budget fits in what is left
    client.fetch_snapshot(PLUGINS, scan=client.start_scan(PLUGINS, budget=3))
    assert client.rate_limit is not None
    assert client.rate_limit.remaining == 6


@pytest.mark.parametrize("status", [403, 429])
def test_rate_limit_answer_mid_scan_carries_the_reset(root: Path, status: int) -> None:
    with (
        GitHubEmulator(root, rate_limit=3, rate_limit_status=status) as emulator,
        _client(emulator) as client,
    ):
        emulator.set_rate_limit(1, token=TOKEN, reset_in_s=600)
        scan = client.start_scan("obra/superpowers")  # nothing known yet: the scan starts
        with pytest.raises(RateLimited) as caught:
            client.fetch_snapshot("obra/superpowers", scan=scan)
        calls_after_error = len(emulator.calls)
        with pytest.raises(RateLimited):
            client.start_scan(PLUGINS)
        assert len(emulator.calls) == calls_after_error
    assert caught.value.status == status
    assert "API rate limit exceeded" in str(caught.value)
    assert 590 < caught.value.retry_after_s <= 600


def test_secondary_rate_limit_uses_retry_after(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    emulator.inject_secondary_rate_limit(30)
    with pytest.raises(RateLimited, match="secondary rate limit") as caught:
        client.fetch_snapshot("obra/superpowers")
    assert caught.value.status == 429
    assert 28 < caught.value.retry_after_s <= 30
    expected_reset = datetime.now(UTC) + timedelta(seconds=30)
    assert abs((caught.value.reset_at - expected_reset).total_seconds()) < 3


def test_unknown_repository_is_permanent(client: GitHubClient) -> None:
    with pytest.raises(ApiError) as caught:
        client.fetch_snapshot("obra/does-not-exist")
    assert caught.value.kind is FailureKind.PERMANENT
    assert caught.value.status == 404
    assert "obra/does-not-exist" in str(caught.value)
    assert "does not exist or the token cannot see it" in str(caught.value)


def test_unknown_ref_is_permanent(client: GitHubClient) -> None:
    with pytest.raises(ApiError, match="resolving ref 'nope'") as caught:
        client.fetch_snapshot("obra/superpowers", "nope")
    assert (caught.value.kind, caught.value.status) == (FailureKind.PERMANENT, 422)


def test_missing_raw_file_is_permanent(client: GitHubClient) -> None:
    snapshot = client.fetch_snapshot("obra/superpowers")
    with pytest.raises(ApiError, match=r"reading nope\.md") as caught:
        client.read_raw("obra/superpowers", snapshot.commit_sha, "nope.md", scan=snapshot.stats)
    assert (caught.value.kind, caught.value.status) == (FailureKind.PERMANENT, 404)


@pytest.mark.parametrize(("status", "host"), [(500, "rest"), (502, "rest"), (502, "raw")])
def test_server_errors_are_transient(
    emulator: GitHubEmulator, client: GitHubClient, status: int, host: str
) -> None:
    emulator.inject_fault("obra/superpowers", status, host=host)  # type: ignore[arg-type]
    with pytest.raises(ApiError) as caught:
        snapshot = client.fetch_snapshot("obra/superpowers")
        snapshot.read_blob(next(e for e in snapshot.entries if e.path == "README.md"))
    assert (caught.value.kind, caught.value.status) == (FailureKind.TRANSIENT, status)
    assert caught.value.transient
    assert "obra/superpowers" in str(caught.value)


def test_timeout_is_transient(root: Path) -> None:
    with (
        GitHubEmulator(root, delay_s=2.0) as emulator,
        _client(emulator, timeout=0.2) as client,
        pytest.raises(ApiError, match="timed out") as caught,
    ):
        client.repository("obra/superpowers")
    assert caught.value.kind is FailureKind.TRANSIENT


def test_unreachable_host_is_transient() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with (
        GitHubClient(api_url=url, raw_url=url, token=Secret(TOKEN)) as client,
        pytest.raises(ApiError, match="cannot reach") as caught,
    ):
        client.repository("obra/superpowers")
    assert caught.value.kind is FailureKind.TRANSIENT


def test_wrong_token_is_permanent_and_never_shown(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "ghp_WRONGtokenWRONGtokenWRONGtoken0000"
    caplog.set_level(logging.DEBUG)
    with (
        GitHubEmulator(root, tokens=[TOKEN]) as emulator,
        _client(emulator, token=Secret(wrong)) as client,
    ):
        with pytest.raises(ApiError) as caught:
            client.fetch_snapshot("obra/superpowers")
        calls = emulator.calls
    error = caught.value
    assert (error.kind, error.status) == (FailureKind.PERMANENT, 401)
    assert "Bad credentials" in str(error)
    assert "GITHUB_TOKEN" in str(error)
    assert calls[0].authenticated
    assert caplog.records, "the client logs its requests at DEBUG"
    for text in (str(error), repr(error), repr(error.args), caplog.text, repr(client), repr(calls)):
        assert wrong not in text
        assert "WRONGtoken" not in text


def test_redirect_to_another_host_drops_the_token(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    # the raw server is a different origin (port): it must see the request without a token
    emulator.redirect_repo("obra/superpowers", emulator.raw_url)
    with pytest.raises(ApiError) as caught:
        client.repository("obra/superpowers")
    first, second = emulator.calls
    assert (first.host, first.status, first.authenticated) == ("rest", 302, True)
    assert (second.host, second.authenticated) == ("raw", False)
    assert caught.value.status == 404


def test_renamed_repository_is_followed_on_the_same_host(root: Path) -> None:
    with (
        GitHubEmulator(root, renames={"obra/old-name": "obra/superpowers"}) as emulator,
        _client(emulator) as client,
    ):
        snapshot = client.fetch_snapshot("obra/old-name")
        readme = next(e for e in snapshot.entries if e.path == "README.md")
        data = snapshot.read_blob(readme)
        calls = emulator.calls
    assert snapshot.entries == snapshot_commit(open_bare(root, "obra/superpowers")).entries
    assert git_blob_sha(data) == readme.sha
    assert [(c.host, c.status) for c in calls] == [
        ("rest", 301),
        ("rest", 200),
        ("rest", 200),
        ("raw", 301),
        ("raw", 200),
    ]
    assert all(c.authenticated for c in calls)
    assert snapshot.stats.api_calls == 3  # every hop counts toward the budget


def test_anonymous_client_sends_no_token(emulator: GitHubEmulator) -> None:
    with _client(emulator, token=None) as client:
        client.fetch_snapshot("obra/superpowers")
    assert not any(c.authenticated for c in emulator.calls)
    assert client.rate_limit is not None
    assert client.rate_limit.limit == 60


def test_settings_come_from_the_environment(
    emulator: GitHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKILLMEAT_GITHUB_API_URL", emulator.api_url)
    monkeypatch.setenv("SKILLMEAT_GITHUB_RAW_URL", emulator.raw_url)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    with GitHubClient.from_env(call_budget=4) as client:
        scan = client.start_scan("obra/superpowers")
        client.repository("obra/superpowers", scan=scan)
    assert scan.budget == 4
    assert emulator.calls[0].authenticated
    assert TOKEN not in repr(client)
    monkeypatch.delenv("SKILLMEAT_GITHUB_API_URL")
    monkeypatch.delenv("SKILLMEAT_GITHUB_RAW_URL")
    with GitHubClient.from_env() as defaults:
        assert (defaults.api_url, defaults.raw_url) == (
            GITHUB_URLS["SKILLMEAT_GITHUB_API_URL"],
            GITHUB_URLS["SKILLMEAT_GITHUB_RAW_URL"],
        )


def test_repository_names_are_validated(client: GitHubClient) -> None:
    for bad in ["obra", "obra/super/powers", "../etc", "obra/..", "obra/a b"]:
        with pytest.raises(ValueError, match="not a GitHub repository name"):
            client.fetch_snapshot(bad)


def test_memory_etag_cache_is_bounded() -> None:
    cache = MemoryEtagCache(max_entries=2, max_bytes=10)
    cache.put("a", CachedResponse('"a"', b"1234"))
    cache.put("b", CachedResponse('"b"', b"1234"))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", CachedResponse('"c"', b"1234"))
    assert (cache.get("a") is not None, cache.get("b"), cache.get("c") is not None) == (
        True,
        None,
        True,
    )
    cache.put("d", CachedResponse('"d"', b"12345678"))  # 12 bytes with c: evicts the oldest
    assert cache.get("a") is None
    cache.put("huge", CachedResponse('"h"', b"x" * 11))
    assert cache.get("huge") is None


def test_etag_cache_is_pluggable_and_outlives_the_client(emulator: GitHubEmulator) -> None:
    class DictCache:
        def __init__(self) -> None:
            self.items: dict[str, CachedResponse] = {}

        def get(self, url: str) -> CachedResponse | None:
            return self.items.get(url)

        def put(self, url: str, response: CachedResponse) -> None:
            self.items[url] = response

    store = DictCache()
    with _client(emulator, etag_cache=store) as first:
        first.fetch_snapshot("obra/superpowers")
    with _client(emulator, etag_cache=store) as second:
        snapshot = second.fetch_snapshot("obra/superpowers")
    assert len(store.items) == 2
    assert (snapshot.stats.api_calls, snapshot.stats.not_modified) == (0, 1)
    assert [c.status for c in emulator.api_calls()] == [200, 200, 304]


def test_a_token_echoed_by_a_server_is_masked() -> None:
    # no real GitHub host echoes credentials; an in-process transport stands in for one that does
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": f"blocked: {request.headers['authorization']}"})

    with (
        GitHubClient(token=Secret(TOKEN), transport=httpx.MockTransport(echo)) as client,
        pytest.raises(ApiError) as caught,
    ):
        client.repository("obra/superpowers")
    assert caught.value.kind is FailureKind.PERMANENT
    assert "blocked: Bearer ***" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_a_token_in_a_transport_error_or_the_client_repr_is_masked() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"proxy refused {request.headers['authorization']}")

    with (
        GitHubClient(token=Secret(TOKEN), transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(ApiError, match="cannot reach") as caught,
    ):
        assert TOKEN not in repr(client)
        client.repository("obra/superpowers")
    error = caught.value
    assert error.kind is FailureKind.TRANSIENT
    shown = " ".join([str(error), repr(error), *map(str, error.args)])
    assert TOKEN not in shown and "proxy refused Bearer ***" in shown
