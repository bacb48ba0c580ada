"""The rules of SPEC §2.1: what each form of marketplace entry becomes, on hostile input too."""

from __future__ import annotations

from typing import Any

import pytest

from skillmeat_pipeline.lib.core.plugin_sources import (
    MAX_PLUGIN_SOURCES_PER_MARKETPLACE,
    PluginSourceConfig,
    github_repo_of,
    plugin_sources,
)
from skillmeat_pipeline.lib.core.sources import SourceConfig

MARKET = SourceConfig(key="acme/market", github="acme/market")
PIN = "a" * 40


def marketplace(*entries: dict[str, Any]) -> dict[str, Any]:
    plugins = [
        {"name": e.get("name"), "source": e.get("source"), "path": None, "exists": None, "entry": e}
        for e in entries
    ]
    return {"marketplaces": [{"path": ".claude-plugin/marketplace.json", "plugins": plugins}]}


@pytest.fixture(autouse=True)
def github_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILLMEAT_GITHUB_GIT_URL", "http://127.0.0.1:9999")


def test_every_form_becomes_a_plugin_source_or_a_skipped_entry_with_a_reason() -> None:
    found = plugin_sources(
        MARKET,
        marketplace(
            {"name": "gh", "source": {"source": "github", "repo": "o/r"}},
            {"name": "gh-ref", "source": {"source": "github", "repo": "o/r", "ref": "v1"}},
            {"name": "gh-pin", "source": {"source": "github", "repo": "o/r", "sha": PIN}},
            {"name": "url-gh", "source": {"source": "url", "url": "https://github.com/o/x.git"}},
            {"name": "url", "source": {"source": "url", "url": "https://git.example.com/a/b"}},
            {
                "name": "sub",
                "source": {"source": "git-subdir", "url": "https://github.com/o/m", "path": "p/q"},
            },
            {"name": "local", "source": "./plugins/local"},
            {"name": "pkg", "source": {"source": "npm", "package": "@acme/pkg"}},
            {"name": "odd", "source": {"source": "pip", "package": "x"}},
            {"name": "self", "source": {"source": "github", "repo": "ACME/Market"}},
            {"name": "bad-sha", "source": {"source": "github", "repo": "o/r", "sha": "abc"}},
        ),
    )
    by_key = {s.key: s for s in found.sources}
    assert list(by_key) == [
        "gh@acme/market",
        "gh-ref@acme/market",
        "gh-pin@acme/market",
        "url-gh@acme/market",
        "url@acme/market",
        "sub@acme/market",
    ]
    assert (by_key["gh@acme/market"].github, by_key["gh@acme/market"].url) == (
        "o/r",
        "http://127.0.0.1:9999/o/r.git",
    )
    assert by_key["gh-ref@acme/market"].ref == "v1"
    assert by_key["gh-pin@acme/market"].pinned_commit == PIN
    assert by_key["url-gh@acme/market"].github == "o/x"  # github.com URLs are GitHub sources
    assert (by_key["url@acme/market"].github, by_key["url@acme/market"].url) == (
        None,
        "https://git.example.com/a/b",
    )
    assert (by_key["sub@acme/market"].github, by_key["sub@acme/market"].root_hint) == ("o/m", "p/q")
    assert all(isinstance(s, PluginSourceConfig) for s in found.sources)
    assert by_key["gh@acme/market"].entry["name"] == "gh"
    reasons = {s.plugin: s.reason for s in found.skipped}
    assert set(reasons) == {"pkg", "odd", "self", "bad-sha"}
    assert "npm" in reasons["pkg"]
    assert "unknown source form 'pip'" in reasons["odd"]
    assert "own repository" in reasons["self"]
    assert "invalid github source (sha" in reasons["bad-sha"]
    assert found.problems == ()


def test_bad_names_and_duplicates_are_problems_on_the_marketplace() -> None:
    gh = {"source": "github", "repo": "o/r"}
    found = plugin_sources(
        MARKET,
        marketplace(
            {"name": "a,b", "source": gh},
            {"name": "x\x1b[31m", "source": gh},
            {"name": None, "source": gh},
            {"name": "twice", "source": gh},
            {"name": "twice", "source": {"source": "github", "repo": "o/other"}},
        ),
    )
    assert [s.key for s in found.sources] == ["twice@acme/market"]
    assert found.sources[0].github == "o/r"  # the first of two entries with one name
    assert len(found.problems) == 4
    assert "not a valid partition key" in found.problems[0]
    assert "\x1b" not in " ".join(found.problems)  # shown escaped, never raw
    assert "listed twice" in found.problems[3]


def test_a_huge_marketplace_is_bounded() -> None:
    entries = [
        {"name": f"p{i}", "source": {"source": "github", "repo": f"o/r{i}"}}
        for i in range(MAX_PLUGIN_SOURCES_PER_MARKETPLACE + 500)
    ]
    found = plugin_sources(MARKET, marketplace(*entries))
    assert len(found.sources) == MAX_PLUGIN_SOURCES_PER_MARKETPLACE
    assert found.problems == (
        f"500 more entries are not indexed: a marketplace yields at most "
        f"{MAX_PLUGIN_SOURCES_PER_MARKETPLACE} plugin sources",
    )


@pytest.mark.parametrize(
    "odd",
    [
        None,
        [],
        {"marketplaces": "x"},
        {"marketplaces": [None, {"plugins": [None, 3, {"source": {}}]}]},
        {"marketplaces": [{"plugins": [{"name": "n", "source": {"source": "url", "url": 5}}]}]},
        {"marketplaces": [{"plugins": [{"name": "n", "source": {"source": "url", "url": "x"}}]}]},
        {"marketplaces": [{"plugins": [{"name": "n", "source": {"source": ["github"]}}]}]},
        {"marketplaces": [{"plugins": [{"name": "n", "source": 7}]}]},
        {
            "marketplaces": [
                {
                    "plugins": [
                        {
                            "name": "n",
                            "source": {
                                "source": "git-subdir",
                                "url": "https://h/a",
                                "path": "../x",
                            },
                        }
                    ]
                }
            ]
        },
    ],
)
def test_odd_records_never_raise(odd: Any) -> None:
    found = plugin_sources(MARKET, odd)
    assert found.sources == ()


def test_plugin_sources_do_not_spawn_plugin_sources() -> None:
    plugin = PluginSourceConfig(
        key="p@acme/market", github="o/r", marketplace_key="acme/market", plugin="p"
    )
    entry = {"name": "q", "source": {"source": "github", "repo": "o/q"}}
    assert plugin_sources(plugin, marketplace(entry)).sources == ()


def test_github_urls() -> None:
    assert github_repo_of("https://github.com/o/r.git") == "o/r"
    assert github_repo_of("https://github.com/o/r/") == "o/r"
    assert github_repo_of("git@github.com:o/r.git") == "o/r"
    assert github_repo_of("https://github.com/o/r/tree/main") is None
    assert github_repo_of("https://gitlab.com/o/r") is None
    assert github_repo_of("http://127.0.0.1:9999/o/r.git") == "o/r"  # the configured git host


def test_index_runs_are_partition_ranges_cut_between_repositories() -> None:
    from skillmeat_pipeline.index_command import partition_ranges

    order = ["m", "a1", "a2", "a3", "b1", "b2", "c1", "x", "d1", "d2", "d3", "d4", "d5"]
    repository = {key: key[0] for key in order}
    selected = set(order) - {"x"}
    assert partition_ranges(order, selected, repository, per_run=4) == [
        ["m", "a1", "a2", "a3"],
        ["b1", "b2", "c1"],  # a cut falls between repositories, and at `x`, not selected
        ["d1", "d2", "d3", "d4"],  # more sources of one repository than a run holds
        ["d5"],
    ]
    assert partition_ranges(order, {"a2", "c1", "d5"}, repository) == [["a2"], ["c1"], ["d5"]]
    assert partition_ranges(order, set(), repository) == []
