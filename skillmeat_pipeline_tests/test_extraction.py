"""Catalog entries from detected artifacts (SPEC §5.2): fields, reuse, deep text."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pygit2
import pytest

from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.manifests import MAX_DEEP_FILE_BYTES, MAX_DEEP_TEXT_BYTES
from skillmeat_pipeline.lib.core.models import (
    ArtifactStatus,
    ArtifactType,
    CatalogEntry,
    TreeSnapshot,
)
from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit
from skillmeat_pipeline_tests.test_detection import (
    MakeSnapshot,
    RecordingSnapshot,
    TreeSpec,
    build_snapshot,
)

INDEXED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def make_snapshot(tmp_path: Path) -> MakeSnapshot:
    numbers = itertools.count()
    return lambda files: build_snapshot(tmp_path / f"repo{next(numbers)}.git", files)


def extract(snapshot: TreeSnapshot, **options: Any) -> dict[str, CatalogEntry]:
    """Entries by path; `previous` is given by path too (the catalog keys it by type and path)."""
    if "previous" in options:
        options["previous"] = {entry.key: entry for entry in options["previous"].values()}
    detection = detect_artifacts(snapshot, repo_name="acme/kit")
    entries = extract_catalog_entries(
        snapshot, detection, source_key="acme/kit", indexed_at=INDEXED_AT, **options
    )
    return {entry.path: entry for entry in entries}


def recording(make_snapshot: MakeSnapshot, files: TreeSpec) -> RecordingSnapshot:
    return RecordingSnapshot(make_snapshot(files))


def test_frontmatter_fills_the_entry_and_its_name_overrides_the_folder_name(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot(
        {
            "skills/pdf/SKILL.md": (
                "---\nname: PDF Tools\ndescription: Read and fill PDF forms.\n"
                "allowed-tools: [Read, 'Bash(pdftk:*)']\ntags: pdf, forms\nlicense: MIT\n---\n"
                "# Working with PDFs\n"
            ),
            "agents/architect.md": (
                "---\nname: system-architect\ndescription: Designs systems.\n"
                "tools: Read, Grep, Glob\nmodel: opus\ntags: [design]\n---\nYou design.\n"
            ),
            "commands/git/commit.md": (
                "---\nname: commit-now\ndescription: Commit staged work.\n"
                "argument-hint: [message]\nallowed-tools: Bash(git add:*), Bash(git commit:*)\n"
                "---\nCommit.\n"
            ),
        }
    )

    entries = extract(snapshot)

    skill = entries["skills/pdf"]
    assert (skill.name, skill.title) == ("PDF Tools", "Working with PDFs")
    assert skill.description == "Read and fill PDF forms."
    assert skill.tools == ["Read", "Bash(pdftk:*)"]
    assert skill.tags == ["pdf", "forms"]
    assert skill.metadata["license"] == "MIT"
    assert skill.manifest_path == "skills/pdf/SKILL.md"
    assert "valid_frontmatter" in skill.signals
    agent = entries["agents/architect.md"]
    assert (agent.name, agent.model, agent.tags) == ("system-architect", "opus", ["design"])
    assert agent.tools == ["Read", "Grep", "Glob"]
    command = entries["commands/git/commit.md"]
    assert command.name == "git:commit"
    assert command.metadata["argument-hint"] == "[message]"
    assert command.tools == ["Bash(git add:*)", "Bash(git commit:*)"]
    for entry in entries.values():
        assert entry.source_key == "acme/kit"
        assert entry.indexed_commit == snapshot.commit_sha
        assert entry.first_seen_commit == snapshot.commit_sha
        assert entry.indexed_at == INDEXED_AT
        assert entry.status is ArtifactStatus.NEW


def test_search_text_exists_without_frontmatter(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(
        {
            ".claude/skills/claude-code/SKILL.md": (
                "# Claude Code\n\nHow to get the most out of Claude Code.\n\n## Details\n"
            ),
            "commands/empty.md": b"",
        }
    )

    entries = extract(snapshot)

    skill = entries[".claude/skills/claude-code"]
    assert skill.name == "claude-code"
    assert skill.title == "Claude Code"
    assert skill.description == "How to get the most out of Claude Code."
    assert skill.search_text.split("\n") == [
        "claude-code",
        "Claude Code",
        "How to get the most out of Claude Code.",
    ]
    assert "valid_frontmatter" not in skill.signals
    assert entries["commands/empty.md"].search_text == "empty"


def test_frontmatter_strict_yaml_rejects_lowers_confidence_and_is_kept(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot(
        {
            "agents/clean.md": "---\nname: clean\ndescription: Reviews code.\n---\nBody.\n",
            "agents/creator.md": (
                "---\nname: agent-creator\ndescription: Use this agent when: the user asks.\n"
                "<example>\nContext: a user\n</example>\nmodel: sonnet\n---\nBody.\n"
            ),
        }
    )

    entries = extract(snapshot)

    creator = entries["agents/creator.md"]
    assert creator.name == "agent-creator"
    assert creator.model == "sonnet"
    assert creator.problems
    assert all(problem.startswith("agents/creator.md: ") for problem in creator.problems)
    assert creator.confidence < entries["agents/clean.md"].confidence


def test_json_artifacts_take_their_fields_from_detection_without_a_read(
    make_snapshot: MakeSnapshot,
) -> None:
    plugin = {"name": "db-kit", "description": "Database tools.", "keywords": ["sql", "db"]}
    hooks = {"description": "Blocks rm -rf.", "hooks": {"PreToolUse": []}}
    mcp = {"mcpServers": {"postgres": {"command": "pg-mcp", "description": "Query Postgres."}}}
    snapshot = recording(
        make_snapshot,
        {
            "db/.claude-plugin/plugin.json": json.dumps(plugin),
            "db/hooks/hooks.json": json.dumps(hooks),
            "db/.mcp.json": json.dumps(mcp),
        },
    )
    detection = detect_artifacts(snapshot)
    snapshot.read_paths.clear()

    entries = {
        e.path: e for e in extract_catalog_entries(snapshot, detection, source_key="acme/kit")
    }

    assert snapshot.read_paths == []
    assert entries["db"].description == "Database tools."
    assert entries["db"].tags == ["sql", "db"]
    assert entries["db"].search_text == "db-kit\nDatabase tools.\nsql\ndb"
    assert entries["db/hooks/hooks.json"].description == "Blocks rm -rf."
    assert entries["db/hooks/hooks.json"].name == "db-kit"
    assert entries["db/.mcp.json#postgres"].description == "Query Postgres."
    assert entries["db/.mcp.json#postgres"].plugin_path == "db"


def test_unchanged_entries_are_reused_without_reading(make_snapshot: MakeSnapshot) -> None:
    files: dict[str, bytes | str] = {
        "agents/keep.md": "---\nname: keep\ndescription: Stays.\n---\n",
        "agents/edit.md": "---\nname: edit\ndescription: Before.\n---\n",
        "skills/s/SKILL.md": "---\nname: s\ndescription: Skill.\n---\n",
        "skills/s/notes.md": "v1",
    }
    first = make_snapshot(files)
    previous = extract(first)

    again = RecordingSnapshot(first)
    reused = extract(again, previous=previous)

    assert again.read_paths == []
    assert {e.status for e in reused.values()} == {ArtifactStatus.UNCHANGED}
    assert reused["agents/keep.md"].description == "Stays."

    second = recording(
        make_snapshot,
        files
        | {
            "agents/edit.md": "---\nname: edit\ndescription: After.\n---\n",
            "skills/s/notes.md": "v2",
            "agents/new.md": "---\nname: new\n---\n",
        },
    )
    later = datetime(2026, 2, 1, tzinfo=UTC)
    detection = detect_artifacts(second)
    second.read_paths.clear()
    entries = {
        e.path: e
        for e in extract_catalog_entries(
            second,
            detection,
            source_key="acme/kit",
            previous={e.key: e for e in previous.values()},
            indexed_at=later,
        )
    }

    assert {path: e.status for path, e in entries.items()} == {
        "agents/keep.md": ArtifactStatus.UNCHANGED,
        "agents/edit.md": ArtifactStatus.UPDATED,
        "skills/s": ArtifactStatus.UPDATED,
        "agents/new.md": ArtifactStatus.NEW,
    }
    assert sorted(second.read_paths) == ["agents/edit.md", "agents/new.md", "skills/s/SKILL.md"]
    assert entries["agents/edit.md"].description == "After."
    assert entries["agents/edit.md"].first_seen_commit == first.commit_sha
    assert entries["agents/new.md"].first_seen_commit == second.commit_sha
    keep = entries["agents/keep.md"]
    assert (keep.first_seen_commit, keep.indexed_commit) == (first.commit_sha, second.commit_sha)
    assert keep.indexed_at == later


def test_a_removed_row_that_reappears_is_new_again(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot({"agents/back.md": "---\nname: back\n---\n"})
    stored = extract(snapshot)["agents/back.md"]
    removed = stored.model_copy(update={"status": ArtifactStatus.REMOVED})

    entry = extract(snapshot, previous={"agents/back.md": removed})["agents/back.md"]

    assert entry.status is ArtifactStatus.NEW
    assert entry.first_seen_commit == stored.first_seen_commit


def test_deep_indexing_respects_the_limits(make_snapshot: MakeSnapshot) -> None:
    chunk = ("word " * (MAX_DEEP_FILE_BYTES // 5 - 10)).encode()
    files: dict[str, bytes | str] = {
        "skills/big/SKILL.md": "---\nname: big\ndescription: Big skill.\n---\nUNIQUE-MANIFEST\n",
        "skills/big/huge.txt": b"x" * (MAX_DEEP_FILE_BYTES + 1),
        "skills/big/logo.png": b"\x89PNG" + b"\x00" * 100,
        "skills/big/node_modules/dep/readme.md": "dependency",
    }
    files |= {
        f"skills/big/ref/{i:02}.md": chunk for i in range(MAX_DEEP_TEXT_BYTES // len(chunk) + 2)
    }
    files |= {"agents/a.md": "---\nname: a\n---\nAgent body.\n"}
    snapshot = recording(make_snapshot, files)

    entries = extract(snapshot, deep_indexing=True)

    skill = entries["skills/big"]
    assert skill.deep_search_text is not None
    assert len(skill.deep_search_text.encode()) <= MAX_DEEP_TEXT_BYTES
    assert skill.deep_index_files[0] == "skills/big/SKILL.md"
    assert "UNIQUE-MANIFEST" in skill.deep_search_text
    assert "skills/big/huge.txt" not in skill.deep_index_files
    assert any("huge.txt" in problem for problem in skill.problems)
    assert any(str(MAX_DEEP_TEXT_BYTES) in problem for problem in skill.problems)
    assert "skills/big/logo.png" not in snapshot.read_paths
    assert "skills/big/node_modules/dep/readme.md" not in snapshot.read_paths
    assert entries["agents/a.md"].deep_index_files == ["agents/a.md"]
    assert "Agent body." in (entries["agents/a.md"].deep_search_text or "")
    assert extract(snapshot)["agents/a.md"].deep_search_text is None


def test_switching_deep_indexing_on_re_extracts_unchanged_artifacts(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot({"agents/a.md": "---\nname: a\n---\nAgent body.\n"})
    shallow = extract(snapshot)

    deep = extract(snapshot, previous=shallow, deep_indexing=True)["agents/a.md"]

    assert deep.deep_search_text is not None
    assert deep.status is ArtifactStatus.UPDATED


def test_upstream_url_per_artifact(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(
        {
            "SKILL.md": "---\nname: kit\n---\n",
            ".claude/skills/Design Principles/skill.md": "# Design\n",
            "mcp.json": json.dumps({"srv": {"command": "x"}}),
        }
    )
    base = f"https://github.com/acme/kit/tree/{snapshot.commit_sha}"

    entries = extract(snapshot, upstream_url=base + "/")

    assert entries["."].upstream_url == base
    assert (
        entries[".claude/skills/Design Principles"].upstream_url
        == f"{base}/.claude/skills/Design%20Principles"
    )
    assert entries["mcp.json#srv"].upstream_url == f"{base}/mcp.json"
    assert extract(snapshot)["."].upstream_url is None


def test_entries_of_a_corpus_repository_with_yaml_that_strict_parsers_reject(
    corpus_bare_repo: Callable[[str], Path],
) -> None:
    snapshot = snapshot_commit(pygit2.Repository(str(corpus_bare_repo("anthropics+claude-code"))))

    entries = extract(snapshot)

    assert (
        len(entries) == 61
    )  # the corpus table: plugin-dev is a marketplace entry without plugin.json
    assert all(entry.search_text for entry in entries.values())
    agents = [e for e in entries.values() if e.artifact_type is ArtifactType.AGENT]
    assert all(agent.description for agent in agents)
