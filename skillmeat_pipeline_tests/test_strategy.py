from datetime import UTC, datetime

import pytest

from skillmeat_pipeline.lib.core.strategy import (
    CloneTarget,
    Strategy,
    StrategyInputs,
    build_clone_target,
    common_root,
    select_strategy,
)


def rooted(n: int) -> list[str]:
    return [f".claude/skills/s{i}" for i in range(n)]


def unrooted(n: int) -> list[str]:
    return [f"skills/s{i}" if i % 2 else f"agents/a{i}.md" for i in range(n)]


def manifests(paths: list[str]) -> list[str]:
    return [p if p.endswith(".md") else f"{p}/SKILL.md" for p in paths]


@pytest.mark.parametrize(
    ("count", "paths", "github", "deep", "expected", "reason"),
    [
        (0, rooted, True, False, Strategy.API, "count 0 < 3"),
        (2, rooted, True, False, Strategy.API, "count 2 < 3"),
        (2, unrooted, True, False, Strategy.API, "count 2 < 3"),
        (2, rooted, False, False, Strategy.SPARSE_MANIFEST, "count 2 < 3 but not a GitHub source"),
        (3, rooted, True, False, Strategy.SPARSE_MANIFEST, "count 3 in 3..20"),
        (3, unrooted, True, False, Strategy.SPARSE_MANIFEST, "count 3 in 3..20"),
        (20, rooted, True, False, Strategy.SPARSE_MANIFEST, "count 20 in 3..20"),
        (20, unrooted, True, False, Strategy.SPARSE_MANIFEST, "count 20 in 3..20"),
        (
            21,
            rooted,
            True,
            False,
            Strategy.SPARSE_DIRECTORY,
            "count 21 > 20 with common root .claude/skills",
        ),
        (
            21,
            unrooted,
            True,
            False,
            Strategy.SPARSE_MANIFEST,
            "count 21 > 20 without a common root",
        ),
        (2, rooted, True, True, Strategy.SPARSE_DIRECTORY, "deep_indexing is on"),
        (3, unrooted, True, True, Strategy.SPARSE_DIRECTORY, "deep_indexing is on"),
        (21, unrooted, False, True, Strategy.SPARSE_DIRECTORY, "deep_indexing is on"),
    ],
)
def test_strategy_table(count, paths, github, deep, expected, reason):
    artifact_paths = paths(count)
    selection = select_strategy(
        StrategyInputs(
            source="o/r",
            artifact_paths=artifact_paths,
            manifest_paths=manifests(artifact_paths),
            is_github=github,
            deep_indexing=deep,
        )
    )
    assert selection.selected_strategy is expected
    assert selection.reason == reason
    assert selection.artifact_count == count
    assert selection.patterns_count == len(selection.patterns)
    assert not selection.fallback


def test_sparse_directory_reads_the_common_root_and_manifest_strategy_reads_manifests():
    paths = rooted(25)
    selection = select_strategy(
        StrategyInputs(source="s", artifact_paths=paths, manifest_paths=manifests(paths))
    )
    assert selection.patterns == [".claude/skills/**"]
    assert selection.artifacts_root == ".claude/skills"
    few = select_strategy(
        StrategyInputs(source="s", artifact_paths=paths[:5], manifest_paths=manifests(paths[:5]))
    )
    assert few.patterns == sorted(manifests(paths[:5]))


def test_first_index_of_non_github_source_clones():
    selection = select_strategy(StrategyInputs(source="s", artifact_paths=None))
    assert selection.selected_strategy is Strategy.SPARSE_MANIFEST
    assert selection.artifact_count is None
    assert "unknown" in selection.reason


def test_unusable_clone_falls_back_to_api_for_github_only():
    github = select_strategy(
        StrategyInputs(
            source="s",
            artifact_paths=rooted(50),
            is_github=True,
            clone_unusable_reason="free disk 10 MB < 500 MB minimum",
        )
    )
    assert github.selected_strategy is Strategy.API
    assert github.fallback
    assert github.reason == "free disk 10 MB < 500 MB minimum"
    other = select_strategy(
        StrategyInputs(source="s", artifact_paths=rooted(50), clone_unusable_reason="no libgit2")
    )
    assert other.selected_strategy is Strategy.SPARSE_MANIFEST
    assert "no API fallback" in other.reason


def test_large_github_repository_goes_to_api_and_names_the_size():
    selection = select_strategy(
        StrategyInputs(source="s", artifact_paths=rooted(40), is_github=True, repo_size_mb=900)
    )
    assert selection.selected_strategy is Strategy.API
    assert "900 MB > 500 MB" in selection.reason


def test_log_record_is_the_spec_record():
    record = select_strategy(
        StrategyInputs(source="o/r", artifact_paths=rooted(2), is_github=True)
    ).log_record()
    assert record == {
        "source": "o/r",
        "artifact_count": 2,
        "artifacts_root": ".claude/skills",
        "selected_strategy": "api",
        "patterns_count": 0,
        "reason": "count 2 < 3",
    }


@pytest.mark.parametrize(
    ("paths", "root"),
    [
        ([], None),
        (["."], None),
        ([".mcp.json#github"], None),
        (["skills/a"], "skills/a"),
        (["skills/a", "skills/b"], "skills"),
        (["plugins/p/agents/a.md", "plugins/p/commands/c.md"], "plugins/p"),
        (["my-skills/a", "skills/b"], None),
        (["skills/a", "skills/ab"], "skills"),
    ],
)
def test_common_root(paths, root):
    assert common_root(paths) == root


def test_clone_target_round_trips_exactly_through_json():
    paths = rooted(22)
    target = build_clone_target(
        Strategy.SPARSE_DIRECTORY,
        paths,
        manifests(paths),
        commit_sha="a" * 40,
        tree_sha="b" * 40,
        computed_at=datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC),
    )
    text = target.model_dump_json()
    again = CloneTarget.model_validate_json(text)
    assert again == target
    assert again.model_dump_json() == text
    assert again.artifact_count == 22
    assert again.patterns == [".claude/skills/**"]
    assert again.artifacts_root == ".claude/skills"
    assert again.tree_sha == "b" * 40
