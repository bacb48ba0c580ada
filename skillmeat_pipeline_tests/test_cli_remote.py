"""`skillmeat-pipeline detect` on remotes: a git URL (the pipeline's clone) or `--github` (the API).

Corpus bundles are served by the local git smart-HTTP server and the GitHub emulator over one
folder of bare repositories; what a remote `detect` prints is compared with `detect` on the bundle
itself. Fields that legitimately differ between the two, and are therefore left out of the
comparison:

* `indexed_at`: the moment of extraction, different on every run.
* `source_key`: derived from the location's name. A bundle `owner+repo.bundle` gives `owner/repo`,
  a URL `.../owner/repo.git` gives `repo` (its last path segment), `--github owner/repo` gives
  `owner/repo`.
* `upstream_url` (API path only): a web address exists for GitHub sources only, so `detect URL`
  and `detect BUNDLE` leave it empty while `--github` fills it in.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from skillmeat_pipeline.cli import main
from skillmeat_pipeline.testing.git_server import GitHttpServer, closed_port
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator, layout_bundle
from skillmeat_pipeline_tests.conftest import corpus_dir, corpus_table

# artifact counts from the corpus README; the largest one is the API path's 100+-artifact source
CORPUS_COUNTS = {
    name: corpus_table()[name]["artifacts"]
    for name in ("obra+superpowers", "anthropics+claude-code", "anthropics+claude-plugins-official")
}
LARGE = "anthropics+claude-plugins-official"
SMALL = "obra+superpowers"
FAKE_TOKEN = "ghp_FAKEtokenNEVERprintMEabcdefghijklmnop"
STATS_KEYS = {
    "strategy",
    "commit_sha",
    "bytes_fetched",
    "clone_ms",
    "extract_ms",
    "api_calls",
    "raw_reads",
    "archive_bytes",
}
MAX_REST_CALLS = 10


def slug_of(name: str) -> str:
    return name.replace("+", "/", 1)


@pytest.fixture(scope="module")
def served_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`owner/repo.git` bare copies of the corpus bundles under test."""
    root = tmp_path_factory.mktemp("served")
    for name in CORPUS_COUNTS:
        layout_bundle(corpus_dir() / f"{name}.bundle", root)
    return root


@dataclass
class Servers:
    git: GitHttpServer
    github: GitHubEmulator
    root: Path

    def url(self, name: str) -> str:
        return self.git.url_for(slug_of(name))

    def head_of(self, name: str) -> str:
        bare = self.root / f"{slug_of(name)}.git"
        return subprocess.run(
            ["git", "-C", str(bare), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()


@pytest.fixture
def servers(served_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Servers]:
    with (
        GitHttpServer(served_root) as git,
        GitHubEmulator(served_root, git_base_url=git.base_url) as github,
    ):
        monkeypatch.setenv("SKILLMEAT_GITHUB_API_URL", github.api_url)
        monkeypatch.setenv("SKILLMEAT_GITHUB_RAW_URL", github.raw_url)
        monkeypatch.setenv("SKILLMEAT_GITHUB_GIT_URL", git.base_url)
        monkeypatch.setenv("CLONE_TIMEOUT_SECONDS", "30")
        # the pipeline's 500 MB default would make the test depend on the machine's free disk
        monkeypatch.setenv("MIN_CLONE_DISK_SPACE_MB", "1")
        monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        yield Servers(git, github, served_root)


def detect(*args: str) -> Result:
    return CliRunner().invoke(main, ["detect", *args])


def detect_json(*args: str) -> list[dict[str, Any]]:
    result = detect(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def without(entries: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in fields} for e in entries]


def stats_of(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return json.loads(lines[0])


# -- the clone path equals the local one ----------------------------------------------------------


@pytest.mark.parametrize("name", list(CORPUS_COUNTS))
def test_cloned_url_detects_what_the_bundle_holds(servers: Servers, name: str):
    remote = detect_json(servers.url(name))
    local = detect_json(str(corpus_dir() / f"{name}.bundle"))

    assert len(remote) == CORPUS_COUNTS[name]
    assert without(remote, "indexed_at") == without(local, "indexed_at")
    # cloning a plain URL never touches the GitHub API
    assert servers.github.calls == []


# -- the API path ---------------------------------------------------------------------------------


def test_github_api_path_equals_the_clone_path_within_ten_rest_calls(servers: Servers):
    cloned = detect_json(servers.url(LARGE))
    result = detect("--github", slug_of(LARGE), "--json", "--stats")
    api = json.loads(result.stdout)
    stats = stats_of(result)

    assert len(api) == CORPUS_COUNTS[LARGE] >= 100
    ignored = ("indexed_at", "source_key", "upstream_url")
    assert without(api, *ignored) == without(cloned, *ignored)
    assert {e["source_key"] for e in api} == {slug_of(LARGE)}
    tree_url = f"{servers.git.base_url}/{slug_of(LARGE)}/tree/{servers.head_of(LARGE)}"
    assert all(e["upstream_url"].startswith(tree_url) for e in api)

    rest, raw = servers.github.api_calls(), servers.github.raw_calls()
    archives = servers.github.archive_calls()
    # commit, tree, tarball: the files come from one archive, not a raw read each
    assert len(rest) == 3 <= MAX_REST_CALLS
    assert [c.path.split("/")[4] for c in rest] == ["commits", "git", "tarball"]
    assert len(archives) == 1
    # what --stats reports is what the server saw
    assert stats["api_calls"] == len(rest)
    assert stats["raw_reads"] == len(raw) == 0
    assert 0 < stats["archive_bytes"] < stats["bytes_fetched"]


# -- --stats ---------------------------------------------------------------------------------------


def test_stats_of_a_clone(servers: Servers):
    stats = stats_of(detect(servers.url(LARGE), "--json", "--stats"))

    assert stats.keys() >= STATS_KEYS
    assert stats["strategy"] in ("sparse_manifest", "sparse_directory")
    assert stats["commit_sha"] == servers.head_of(LARGE)
    # a one-commit repository: the depth-1 pack is about the bundle's pack
    bundle_size = (corpus_dir() / f"{LARGE}.bundle").stat().st_size
    assert 0.5 * bundle_size < stats["bytes_fetched"] < 1.5 * bundle_size
    assert stats["clone_ms"] > 0
    assert stats["extract_ms"] >= 0
    assert stats["api_calls"] == stats["raw_reads"] == stats["archive_bytes"] == 0


def test_stats_of_the_api_path(servers: Servers):
    stats = stats_of(detect("--github", slug_of(SMALL), "--json", "--stats"))

    assert stats.keys() >= STATS_KEYS
    assert stats["strategy"] == "api"
    assert stats["commit_sha"] == servers.head_of(SMALL)
    assert 0 < stats["api_calls"] <= MAX_REST_CALLS
    # its plugin is the repository root, so the trust rules read every text file: more than
    # SKILLMEAT_ARCHIVE_THRESHOLD raw reads, so one archive instead of any raw read
    assert stats["raw_reads"] == 0
    assert stats["archive_bytes"] > 0
    assert stats["bytes_fetched"] > 0
    assert stats["clone_ms"] == 0


def test_stats_without_json_is_a_table_on_stderr(servers: Servers):
    result = detect(servers.url(SMALL), "--stats")

    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stderr.strip().splitlines()]
    assert rows[0] == ["STAT", "VALUE"]
    table = {row[0]: row[1] for row in rows[1:]}
    assert table.keys() >= STATS_KEYS
    assert table["commit_sha"] == servers.head_of(SMALL)
    assert int(table["bytes_fetched"]) > 0
    assert result.stdout.strip().endswith(
        f"{CORPUS_COUNTS[SMALL]} artifacts: 1 hook, 1 plugin, 14 skill"
    )


# -- failures --------------------------------------------------------------------------------------

# each case: the CLI arguments (given the running servers and a port that refuses connections),
# and what the one-line error must say
ERROR_CASES: dict[str, tuple[Callable[[Servers, int], list[str]], str]] = {
    "unknown repository on the git server": (
        lambda s, _port: [s.git.url_for("nobody/nothing")],
        "no such repository",
    ),
    "dead git server": (
        lambda _s, port: [f"http://127.0.0.1:{port}/obra/superpowers.git"],
        "Connection refused",
    ),
    "unknown github repository": (
        lambda _s, _port: ["--github", "nobody/nothing"],
        "GitHub answered 404",
    ),
    "malformed URL": (
        lambda _s, _port: ["https://exa mple.com/skills.git"],
        "not a git URL",
    ),
    "token in a malformed URL": (
        lambda _s, _port: [f"https://x-access-token:{FAKE_TOKEN}@exa mple.com/o/r.git"],
        "credentials in a URL are never accepted",
    ),
    "token in the URL": (
        lambda _s, port: [f"https://x-access-token:{FAKE_TOKEN}@127.0.0.1:{port}/o/r.git"],
        "credentials in a URL are never accepted",
    ),
    "token in the query": (
        lambda _s, port: [f"https://127.0.0.1:{port}/o/r.git?access_token={FAKE_TOKEN}"],
        "credentials in a URL are never accepted",
    ),
    "internal address": (
        lambda _s, _port: ["http://169.254.169.254/latest/meta-data/iam.git"],
        "SKILLMEAT_ALLOWED_PRIVATE_HOSTS",
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_failure_is_one_line_exit_2_without_the_token(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, case: str
):
    monkeypatch.setenv("GITHUB_TOKEN", FAKE_TOKEN)
    arguments, expected = ERROR_CASES[case]
    with closed_port() as port:
        result = detect(*arguments(servers, port), "--stats")

    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert FAKE_TOKEN not in result.stderr


@pytest.mark.usefixtures("servers")
def test_dead_github_api_is_one_line_exit_2_without_the_token(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GITHUB_TOKEN", FAKE_TOKEN)
    with closed_port() as port:
        monkeypatch.setenv("SKILLMEAT_GITHUB_API_URL", f"http://127.0.0.1:{port}")
        result = detect("--github", slug_of(SMALL))

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.splitlines()) == 1
    assert "cannot reach" in result.stderr
    assert FAKE_TOKEN not in result.stderr


def test_token_is_used_but_never_printed(servers: Servers, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GITHUB_TOKEN", FAKE_TOKEN)
    outputs = [
        detect("--github", slug_of(SMALL), "--json", "--stats"),
        detect("--github", slug_of(SMALL), "--stats"),
        detect(servers.url(SMALL), "--json", "--stats"),
    ]

    for result in outputs:
        assert result.exit_code == 0, result.stderr
        assert FAKE_TOKEN not in result.stdout
        assert FAKE_TOKEN not in result.stderr
    # the token really was in play: every API and raw request carried it, and the archive host
    # (another host, reached by GitHub's redirect) never got it
    assert servers.github.calls
    assert all(call.authenticated for call in servers.github.calls if call.host != "archive")
    assert not any(call.authenticated for call in servers.github.calls if call.host == "archive")
