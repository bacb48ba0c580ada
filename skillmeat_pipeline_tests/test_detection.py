"""Detection rules of SPEC §3, one synthetic git repository per rule and per trap."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest

from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.models import (
    MODE_BLOB,
    MODE_SYMLINK,
    MODE_TREE,
    ArtifactType,
    DetectedArtifact,
    Detection,
    TreeEntry,
)
from skillmeat_pipeline.lib.fetch.git.tree import GitTreeSnapshot, snapshot_commit

SKILL = b"---\nname: demo\ndescription: A demo skill.\n---\n# Demo\n"
AGENT = b"---\nname: helper\ndescription: Helps.\n---\nYou help.\n"
HOOKS = json.dumps({"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": []}]}})


@dataclass(frozen=True)
class Symlink:
    target: str | bytes


@dataclass(frozen=True)
class Gitlink:
    commit: str = "c8e99d8f30551c846926d8098059b91cf4554dff"


TreeSpec = Mapping[str, bytes | str | Symlink | Gitlink]


def build_snapshot(location: Path, files: TreeSpec) -> GitTreeSnapshot:
    """A bare repository at `location` whose one commit holds `files`, read as production does."""
    repo = pygit2.init_repository(str(location), bare=True)
    root: dict = {}
    for path, content in files.items():
        *folders, name = path.split("/")
        node = root
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = content

    def write(node: dict) -> pygit2.Oid:
        builder = repo.TreeBuilder()
        for name, child in node.items():
            if isinstance(child, dict):
                builder.insert(name, write(child), pygit2.GIT_FILEMODE_TREE)
            elif isinstance(child, Symlink):
                raw = child.target
                target = repo.create_blob(raw.encode() if isinstance(raw, str) else raw)
                builder.insert(name, target, pygit2.GIT_FILEMODE_LINK)
            elif isinstance(child, Gitlink):
                builder.insert(name, pygit2.Oid(hex=child.commit), pygit2.GIT_FILEMODE_COMMIT)
            else:
                data = child.encode() if isinstance(child, str) else child
                builder.insert(name, repo.create_blob(data), pygit2.GIT_FILEMODE_BLOB)
        return builder.write()

    author = pygit2.Signature("test", "test@example.com")
    repo.create_commit("HEAD", author, author, "fixture", write(root), [])
    return snapshot_commit(repo)


class RecordingSnapshot:
    """A snapshot that remembers which paths were read, as the API path would pay for each."""

    def __init__(self, inner: GitTreeSnapshot) -> None:
        self.inner = inner
        self.commit_sha = inner.commit_sha
        self.tree_sha = inner.tree_sha
        self.entries = inner.entries
        self.read_paths: list[str] = []

    def read_blob(self, entry: TreeEntry) -> bytes:
        self.read_paths.append(entry.path)
        return self.inner.read_blob(entry)


MakeSnapshot = Callable[[TreeSpec], GitTreeSnapshot]


@pytest.fixture
def make_snapshot(tmp_path: Path) -> MakeSnapshot:
    numbers = itertools.count()
    return lambda files: build_snapshot(tmp_path / f"repo{next(numbers)}.git", files)


def by_type(detection: Detection, kind: ArtifactType) -> dict[str, DetectedArtifact]:
    return {a.path: a for a in detection.artifacts if a.artifact_type is kind}


def entry_sha(snapshot: GitTreeSnapshot, path: str) -> str:
    return next(e.sha for e in snapshot.entries if e.path == path)


# --- skills --------------------------------------------------------------------------------------


def test_root_skill_is_named_after_the_repository(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot({"SKILL.md": SKILL, "scripts/run.py": "print()"})

    detection = detect_artifacts(snapshot, repo_name="acme/pdf-tools")

    (skill,) = detection.artifacts
    assert (skill.artifact_type, skill.path, skill.name) == (ArtifactType.SKILL, ".", "pdf-tools")
    assert skill.content_sha == snapshot.tree_sha
    assert skill.manifest_path == "SKILL.md"
    assert "canonical_manifest_name" in skill.signals


def test_skill_manifest_name_is_case_insensitive_and_non_canonical_is_flagged(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot(
        {"skills/odd/Skill.md": SKILL, "skills/low/skill.md": SKILL, "skills/ok/SKILL.md": SKILL}
    )

    skills = by_type(detect_artifacts(snapshot), ArtifactType.SKILL)

    assert set(skills) == {"skills/odd", "skills/low", "skills/ok"}
    assert skills["skills/odd"].manifest_path == "skills/odd/Skill.md"
    assert skills["skills/odd"].metadata["manifest_name"] == "Skill.md"
    assert "non_canonical_manifest_name" in skills["skills/low"].signals
    assert "canonical_manifest_name" in skills["skills/ok"].signals
    assert skills["skills/odd"].confidence < skills["skills/ok"].confidence
    assert skills["skills/ok"].content_sha == entry_sha(snapshot, "skills/ok")


def test_canonical_manifest_wins_when_a_folder_has_both_spellings(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot({"s/SKILL.md": SKILL, "s/skill.md": b"old copy"})
    # git lists SKILL.md first; a tree listing from elsewhere need not.
    snapshot.entries.reverse()

    (skill,) = detect_artifacts(snapshot).artifacts

    assert skill.manifest_path == "s/SKILL.md"
    assert "canonical_manifest_name" in skill.signals


def test_nested_skills_are_each_a_skill(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(
        {
            "skills/suite/SKILL.md": SKILL,
            "skills/suite/parts/docx/SKILL.md": SKILL,
            "skills/suite/parts/docx/deeper/SKILL.md": SKILL,
        }
    )

    skills = by_type(detect_artifacts(snapshot), ArtifactType.SKILL)

    assert set(skills) == {
        "skills/suite",
        "skills/suite/parts/docx",
        "skills/suite/parts/docx/deeper",
    }
    assert skills["skills/suite/parts/docx"].name == "docx"


def test_agents_and_commands_inside_a_skill_belong_to_the_skill(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot(
        {
            "plugins/p/skills/creator/SKILL.md": SKILL,
            "plugins/p/skills/creator/agents/grader.md": AGENT,
            "plugins/p/skills/creator/commands/run.md": b"Run it.",
            "plugins/p/skills/creator/references/agents/deep.md": AGENT,
            "plugins/p/agents/real.md": AGENT,
        }
    )

    detection = detect_artifacts(snapshot)

    assert [(a.artifact_type, a.path) for a in detection.artifacts] == [
        (ArtifactType.AGENT, "plugins/p/agents/real.md"),
        (ArtifactType.SKILL, "plugins/p/skills/creator"),
    ]


def test_a_root_skill_owns_every_agent_folder_of_the_repository(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot({"SKILL.md": SKILL, "agents/reviewer.md": AGENT})

    assert [a.artifact_type for a in detect_artifacts(snapshot).artifacts] == [ArtifactType.SKILL]


# --- agents and commands -------------------------------------------------------------------------


def test_agents_below_agents_folders_without_documentation_files(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot(
        {
            ".claude/agents/reviewer.md": AGENT,
            ".claude/agents/team/lead.md": AGENT,
            ".claude/agents/README.md": b"# Agents",
            ".claude/agents/readme.MD": b"# upper-case suffix is not *.md",
            ".claude/agents/Index.md": b"# index",
            ".claude/agents/CLAUDE.md": b"# memory",
            ".claude/agents/notes.txt": b"not markdown",
            "docs/reviewer.md": AGENT,
            "my-agents/other.md": AGENT,
        }
    )

    agents = by_type(detect_artifacts(snapshot), ArtifactType.AGENT)

    assert set(agents) == {".claude/agents/reviewer.md", ".claude/agents/team/lead.md"}
    agent = agents[".claude/agents/reviewer.md"]
    assert agent.name == "reviewer"
    assert agent.content_sha == entry_sha(snapshot, ".claude/agents/reviewer.md")
    assert agent.manifest_path == ".claude/agents/reviewer.md"
    assert "container_folder" in agent.signals
    assert agent.confidence > 0


def test_command_namespaces_come_from_subfolders(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(
        {
            "commands/deploy.md": b"Deploy.",
            "commands/git/commit.md": b"Commit.",
            "commands/git/pr/open.md": b"Open a PR.",
            "commands/CHANGELOG.md": b"# Changes",
        }
    )

    commands = by_type(detect_artifacts(snapshot), ArtifactType.COMMAND)

    assert {path: c.name for path, c in commands.items()} == {
        "commands/deploy.md": "deploy",
        "commands/git/commit.md": "git:commit",
        "commands/git/pr/open.md": "git:pr:open",
    }


def test_agents_declared_by_plugin_json_outside_an_agents_folder(
    make_snapshot: MakeSnapshot,
) -> None:
    manifest = {"name": "core-dev", "agents": ["./api-designer.md", "./agents/x.md", "./gone.md"]}
    snapshot = make_snapshot(
        {
            "categories/01-core/.claude-plugin/plugin.json": json.dumps(manifest),
            "categories/01-core/api-designer.md": AGENT,
            "categories/01-core/unlisted.md": AGENT,
            "categories/01-core/README.md": b"# Core",
            "categories/01-core/agents/x.md": AGENT,
        }
    )

    detection = detect_artifacts(snapshot)

    agents = by_type(detection, ArtifactType.AGENT)
    assert set(agents) == {"categories/01-core/api-designer.md", "categories/01-core/agents/x.md"}
    listed = agents["categories/01-core/api-designer.md"]
    assert listed.signals == ["listed_by_plugin_json"]
    assert listed.plugin_path == "categories/01-core"
    both = agents["categories/01-core/agents/x.md"]
    assert set(both.signals) == {"container_folder", "listed_by_plugin_json"}
    plugin = by_type(detection, ArtifactType.PLUGIN)["categories/01-core"]
    assert any("gone.md" in problem for problem in plugin.problems)


# --- hooks ---------------------------------------------------------------------------------------


def test_hooks_from_hooks_json_settings_and_inline_plugin_hooks(
    make_snapshot: MakeSnapshot,
) -> None:
    plugin = {"name": "guard", "hooks": {"Stop": [{"hooks": []}]}}
    snapshot = make_snapshot(
        {
            "plugins/guard/.claude-plugin/plugin.json": json.dumps(plugin),
            "plugins/guard/hooks/hooks.json": HOOKS,
            ".claude/settings.json": json.dumps({"hooks": {"PostToolUse": []}}),
            ".claude/settings.local.json": json.dumps({"permissions": {}}),
            "config/settings.json": json.dumps({"hooks": {}}),
            "other/hooks.json": json.dumps({"PreToolUse": []}),
        }
    )

    hooks = by_type(detect_artifacts(snapshot), ArtifactType.HOOK)

    assert {path: h.name for path, h in hooks.items()} == {
        "plugins/guard/hooks/hooks.json": "guard",
        "plugins/guard/.claude-plugin/plugin.json": "guard",
        ".claude/settings.json": ".claude",
    }
    assert hooks["plugins/guard/hooks/hooks.json"].metadata["events"] == ["PreToolUse"]
    assert hooks["plugins/guard/.claude-plugin/plugin.json"].plugin_path == "plugins/guard"


def test_react_and_git_hooks_folders_are_not_hooks(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(
        {
            "web/src/hooks/useArtifacts.ts": "export function useArtifacts() {}",
            "web/src/hooks/index.js": "export * from './useArtifacts'",
            "web/src/hooks/package.json": json.dumps({"name": "hooks"}),
            "hooks/pre-commit": "#!/bin/sh\nexit 0\n",
            ".githooks/commit-msg": "#!/bin/sh\n",
        }
    )

    assert detect_artifacts(snapshot).artifacts == []


# --- MCP servers ---------------------------------------------------------------------------------


def test_mcp_servers_with_and_without_the_mcp_servers_wrapper(
    make_snapshot: MakeSnapshot,
) -> None:
    wrapped = {"mcpServers": {"context7": {"type": "http", "url": "https://mcp.context7.com"}}}
    bare = {
        "$schema": "https://example.com/schema.json",
        "github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"},
        "playwright": {"command": "npx", "args": ["@playwright/mcp"], "env": {"TOKEN": "s3cret"}},
    }
    snapshot = make_snapshot({"a/.mcp.json": json.dumps(wrapped), "b/mcp.json": json.dumps(bare)})

    servers = by_type(detect_artifacts(snapshot), ArtifactType.MCP)

    assert {path: s.name for path, s in servers.items()} == {
        "a/.mcp.json#context7": "context7",
        "b/mcp.json#github": "github",
        "b/mcp.json#playwright": "playwright",
    }
    assert "mcp_servers_wrapper" in servers["a/.mcp.json#context7"].signals
    assert "top_level_server_map" in servers["b/mcp.json#github"].signals
    playwright = servers["b/mcp.json#playwright"]
    assert playwright.content_sha == entry_sha(snapshot, "b/mcp.json")
    assert playwright.metadata["env_names"] == ["TOKEN"]
    assert "s3cret" not in json.dumps(playwright.metadata)


def test_mcp_servers_declared_in_plugin_json(make_snapshot: MakeSnapshot) -> None:
    plugin = {"name": "db", "mcpServers": {"postgres": {"command": "pg-mcp"}}}
    snapshot = make_snapshot({"db/.claude-plugin/plugin.json": json.dumps(plugin)})

    servers = by_type(detect_artifacts(snapshot), ArtifactType.MCP)

    server = servers["db/.claude-plugin/plugin.json#postgres"]
    assert server.plugin_path == "db"
    assert "plugin_json_mcp_servers" in server.signals


# --- plugins and marketplaces --------------------------------------------------------------------


def test_root_plugin_and_members_carry_its_path(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(
        {
            ".claude-plugin/plugin.json": json.dumps({"name": "superpowers"}),
            "skills/tdd/SKILL.md": SKILL,
            "commands/plan.md": b"Plan.",
            "hooks/hooks.json": HOOKS,
        }
    )

    detection = detect_artifacts(snapshot, repo_name="superpowers-repo")

    plugin = by_type(detection, ArtifactType.PLUGIN)["."]
    assert plugin.name == "superpowers"
    assert plugin.content_sha == snapshot.tree_sha
    assert plugin.plugin_path is None
    members = [a for a in detection.artifacts if a.artifact_type is not ArtifactType.PLUGIN]
    assert len(members) == 3
    assert {m.plugin_path for m in members} == {"."}
    assert by_type(detection, ArtifactType.HOOK)["hooks/hooks.json"].name == "superpowers"


def test_codex_plugin_beside_claude_plugin_is_not_a_second_plugin(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot(
        {
            "plugins/a/.claude-plugin/plugin.json": json.dumps({"name": "a"}),
            "plugins/a/.codex-plugin/plugin.json": json.dumps({"name": "a"}),
            "plugins/b/.codex-plugin/plugin.json": json.dumps({"name": "b"}),
        }
    )

    detection = detect_artifacts(snapshot)

    assert [(a.artifact_type, a.path) for a in detection.artifacts] == [
        (ArtifactType.PLUGIN, "plugins/a")
    ]


def test_plugin_without_a_name_is_named_after_its_folder(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot({"tools/lint/.claude-plugin/plugin.json": "{}"})

    (plugin,) = detect_artifacts(snapshot).artifacts

    assert plugin.name == "lint"


def test_marketplace_entries_are_recorded_and_missing_folders_reported(
    make_snapshot: MakeSnapshot,
) -> None:
    marketplace = {
        "name": "shop",
        "owner": {"name": "Acme"},
        "plugins": [
            {"name": "real", "source": "./plugins/real"},
            {"name": "ghost", "source": "./plugins/ghost"},
            {"name": "remote", "source": {"source": "github", "repo": "acme/remote"}},
        ],
    }
    snapshot = make_snapshot(
        {
            ".claude-plugin/marketplace.json": json.dumps(marketplace),
            "plugins/real/.claude-plugin/plugin.json": json.dumps({"name": "real"}),
        }
    )

    detection = detect_artifacts(snapshot)

    assert [a.path for a in detection.artifacts] == ["plugins/real"]
    assert detection.marketplace is not None
    (record,) = detection.marketplace["marketplaces"]
    assert record["name"] == "shop"
    assert [(p["name"], p["path"], p["exists"]) for p in record["plugins"]] == [
        ("real", "plugins/real", True),
        ("ghost", "plugins/ghost", False),
        ("remote", None, None),
    ]
    assert any("ghost" in problem for problem in detection.problems)
    assert not any("real" in problem for problem in detection.problems)


def test_nested_marketplace_resolves_sources_from_its_own_root(
    make_snapshot: MakeSnapshot,
) -> None:
    marketplace = {
        "name": "nested",
        "plugins": [{"name": "a", "source": "./a"}, {"name": "top", "source": "./top-level"}],
    }
    snapshot = make_snapshot(
        {
            "composio-skills/.claude-plugin/marketplace.json": json.dumps(marketplace),
            "composio-skills/a/SKILL.md": SKILL,
            "top-level/SKILL.md": SKILL,
        }
    )

    detection = detect_artifacts(snapshot)

    assert detection.marketplace is not None
    plugins = detection.marketplace["marketplaces"][0]["plugins"]
    assert [(p["path"], p["exists"]) for p in plugins] == [
        ("composio-skills/a", True),
        ("composio-skills/top-level", False),
    ]
    assert len(by_type(detection, ArtifactType.SKILL)) == 2


# --- symlinks and gitlinks -----------------------------------------------------------------------


def test_symlink_to_a_folder_in_scope_is_recorded_not_counted_twice(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot(
        {
            "skills/pdf/SKILL.md": SKILL,
            ".claude/skills/pdf": Symlink("../../skills/pdf"),
        }
    )

    detection = detect_artifacts(snapshot)

    assert [a.path for a in detection.artifacts] == ["skills/pdf"]
    assert detection.symlinks == {".claude/skills/pdf": "../../skills/pdf"}
    assert detection.problems == []


def test_symlink_to_a_folder_outside_root_hint_is_followed_once(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot(
        {
            "shared/pdf/SKILL.md": SKILL,
            ".claude/skills/pdf": Symlink("../../shared/pdf"),
            ".claude/skills/pdf-again": Symlink("../../shared/pdf"),
        }
    )

    detection = detect_artifacts(snapshot, root_hint=".claude")

    (skill,) = detection.artifacts
    assert skill.path == ".claude/skills/pdf"
    assert skill.manifest_path == "shared/pdf/SKILL.md"
    assert skill.content_sha == entry_sha(snapshot, "shared/pdf")
    assert skill.metadata["real_path"] == "shared/pdf"
    assert "symlinked" in skill.signals
    assert set(detection.symlinks) == {".claude/skills/pdf", ".claude/skills/pdf-again"}


def test_symlinked_file_is_detected_with_its_target_blob(make_snapshot: MakeSnapshot) -> None:
    link = Symlink("../../library/reviewer.md")
    snapshot = make_snapshot({"library/reviewer.md": AGENT, ".claude/agents/reviewer.md": link})

    (agent,) = detect_artifacts(snapshot).artifacts

    assert agent.path == ".claude/agents/reviewer.md"
    assert agent.manifest_path == "library/reviewer.md"
    assert agent.content_sha == entry_sha(snapshot, "library/reviewer.md")
    assert agent.metadata["real_path"] == "library/reviewer.md"


def test_dangling_and_escaping_symlinks_are_recorded_not_followed(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot(
        {
            "skills/ok/SKILL.md": SKILL,
            ".codex/skills": Symlink(".claude/skills"),
            "agents/escape.md": Symlink("../../outside/agent.md"),
            "agents/absolute.md": Symlink("/etc/passwd"),
        }
    )

    detection = detect_artifacts(snapshot)

    assert [a.path for a in detection.artifacts] == ["skills/ok"]
    assert detection.symlinks == {
        ".codex/skills": ".claude/skills",
        "agents/escape.md": "../../outside/agent.md",
        "agents/absolute.md": "/etc/passwd",
    }
    problems = "\n".join(detection.problems)
    assert ".codex/skills -> .claude/skills: a target that does not exist" in problems
    assert problems.count("outside the repository") == 2


def test_symlink_loops_end(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(
        {
            "a": Symlink("b"),
            "b": Symlink("a"),
            "skills/x/SKILL.md": SKILL,
            "skills/x/self": Symlink("."),
            "skills/x/up": Symlink(".."),
            "outside/SKILL.md": SKILL,
            "outside/back": Symlink("../skills"),
            "skills/out": Symlink("../outside"),
        }
    )

    plain = detect_artifacts(snapshot)
    hinted = detect_artifacts(snapshot, root_hint="skills")

    assert [a.path for a in plain.artifacts] == ["outside", "skills/x"]
    assert any("a -> b: a symlink loop" in problem for problem in plain.problems)
    # `skills/out` leads outside the hint once; `outside/back` leads back into it: not again.
    assert [a.path for a in hinted.artifacts] == ["skills/out", "skills/x"]


def test_gitlinks_are_skipped(make_snapshot: MakeSnapshot) -> None:
    snapshot = RecordingSnapshot(
        make_snapshot({".claude/skills/skill-builder": Gitlink(), "skills/a/SKILL.md": SKILL})
    )

    detection = detect_artifacts(snapshot)

    assert [a.path for a in detection.artifacts] == ["skills/a"]
    assert snapshot.read_paths == []


# --- scope: ignore list, exclude globs, root_hint ------------------------------------------------


def test_default_ignored_folders_at_any_depth(make_snapshot: MakeSnapshot) -> None:
    ignored = [
        "node_modules/pkg/SKILL.md",
        "web/node_modules/pkg/agents/a.md",
        "vendor/x/SKILL.md",
        ".venv/lib/SKILL.md",
        "dist/SKILL.md",
        "build/commands/c.md",
        "tests/fixtures/repo/.claude/agents/a.md",
        "src/__fixtures__/SKILL.md",
        "testdata/SKILL.md",
        "test-data/SKILL.md",
        "test_data/SKILL.md",
        "ui/__snapshots__/SKILL.md",
        "rust/target/SKILL.md",
        "app/.next/SKILL.md",
        ".tox/SKILL.md",
        "py/__pycache__/SKILL.md",
        "py/site-packages/SKILL.md",
        "venv/SKILL.md",
    ]
    snapshot = make_snapshot(
        {path: SKILL for path in ignored}
        | {"tests/fixtures/repo/.claude/settings.json": json.dumps({"hooks": {}})}
        | {"fixtures-guide/SKILL.md": SKILL}
    )

    detection = detect_artifacts(snapshot)

    assert [a.path for a in detection.artifacts] == ["fixtures-guide"]


def test_exclude_globs(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(
        {
            "examples/s/SKILL.md": SKILL,
            "docs/guide/s/SKILL.md": SKILL,
            "agents/draft.wip.md": AGENT,
            "agents/final.md": AGENT,
            "deep/examples/s/SKILL.md": SKILL,
            "drafts/s/SKILL.md": SKILL,
            "a/drafts/s/SKILL.md": SKILL,
            "keep/s/SKILL.md": SKILL,
        }
    )

    detection = detect_artifacts(
        snapshot, exclude=["examples", "docs/**", "*.wip.md", "**/drafts/**"]
    )

    assert [a.path for a in detection.artifacts] == ["agents/final.md", "keep/s"]
    rooted = detect_artifacts(snapshot, exclude=["/examples/"])
    assert "deep/examples/s" in {a.path for a in rooted.artifacts}
    assert "examples/s" not in {a.path for a in rooted.artifacts}


def test_root_hint_matches_at_segment_boundaries(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(
        {
            "skills/a/SKILL.md": SKILL,
            "my-skills/b/SKILL.md": SKILL,
            "skills-extra/c/SKILL.md": SKILL,
            "skills/.claude-plugin/marketplace.json": json.dumps({"plugins": []}),
            ".claude-plugin/marketplace.json": json.dumps({"plugins": []}),
        }
    )

    for hint in ("skills", "/skills/", "./skills"):
        detection = detect_artifacts(snapshot, root_hint=hint)
        assert [a.path for a in detection.artifacts] == ["skills/a"], hint
        assert detection.marketplace is not None
        paths = [m["path"] for m in detection.marketplace["marketplaces"]]
        assert paths == ["skills/.claude-plugin/marketplace.json"]


def test_root_hint_folder_itself_can_be_the_skill(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot({"build/pdf/SKILL.md": SKILL})

    (skill,) = detect_artifacts(snapshot, root_hint="build/pdf").artifacts

    assert (skill.path, skill.name) == ("build/pdf", "pdf")


# --- malformed input -----------------------------------------------------------------------------


def test_malformed_plugin_json_keeps_the_plugin_with_a_problem(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot(
        {
            "good/.claude-plugin/plugin.json": json.dumps({"name": "good"}),
            "bad/.claude-plugin/plugin.json": b'{"name": "bad",',
            "list/.claude-plugin/plugin.json": b"[1, 2]",
        }
    )

    plugins = by_type(detect_artifacts(snapshot), ArtifactType.PLUGIN)

    assert set(plugins) == {"good", "bad", "list"}
    assert plugins["bad"].name == "bad"
    assert any("invalid JSON" in problem for problem in plugins["bad"].problems)
    assert any("not a JSON object" in problem for problem in plugins["list"].problems)
    assert plugins["bad"].confidence < plugins["good"].confidence
    assert plugins["good"].problems == []


def test_malformed_hooks_json_keeps_the_hook_with_a_problem(make_snapshot: MakeSnapshot) -> None:
    snapshot = make_snapshot(
        {
            "good/hooks/hooks.json": HOOKS,
            "bad/hooks/hooks.json": b"{hooks: nope}",
            "latin/hooks/hooks.json": b"\xff\xfe\x00",
        }
    )

    hooks = by_type(detect_artifacts(snapshot), ArtifactType.HOOK)

    assert set(hooks) == {"good/hooks/hooks.json", "bad/hooks/hooks.json", "latin/hooks/hooks.json"}
    assert hooks["bad/hooks/hooks.json"].problems
    assert hooks["bad/hooks/hooks.json"].confidence < hooks["good/hooks/hooks.json"].confidence


def test_unreadable_mcp_and_settings_files_are_detection_problems(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = make_snapshot(
        {".mcp.json": b"{not json", ".claude/settings.json": b"", "x/mcp.json": b'"a string"'}
    )

    detection = detect_artifacts(snapshot)

    assert detection.artifacts == []
    assert len(detection.problems) == 3


ODD_TREES: dict[str, TreeSpec] = {
    "empty repository": {},
    "json of the wrong shapes": {
        ".claude-plugin/plugin.json": json.dumps(
            {"name": 7, "agents": [1, None, {"x": 1}, "../../../etc"], "hooks": [], "mcpServers": 3}
        ),
        "p/.claude-plugin/plugin.json": json.dumps({"agents": "./agents-dir/"}),
        "p/agents-dir/a.md": AGENT,
        "hooks.json": json.dumps({"hooks": "not an object"}),
        ".mcp.json": json.dumps({"mcpServers": ["a", "b"]}),
        ".claude/settings.json": json.dumps({"hooks": None}),
        ".claude-plugin/marketplace.json": json.dumps(
            {"plugins": ["x", {"source": 5}, {"source": "../../../up"}], "metadata": []}
        ),
    },
    "odd names": {
        "agents/c#-expert.md": AGENT,
        "agents/ spaced .md": AGENT,
        "agents/.md": AGENT,
        "commands/ü/ñ.md": b"\xff\xfe not utf-8",
        "skills/-21risk-automation/SKILL.md": SKILL,
        "x/SKILL.md/SKILL.md": SKILL,
        "y/mcp.json": json.dumps({"srv#1": {"command": "x"}}),
    },
    "symlinks in odd places": {
        ".claude-plugin": Symlink("nowhere"),
        "hooks.json": Symlink(b"\xff\xfe"),
        "loop/a": Symlink("../loop/a/b"),
        "SKILL.md": Symlink(""),
    },
}


@pytest.mark.parametrize("name", sorted(ODD_TREES))
def test_detection_never_raises_on_odd_input(make_snapshot: MakeSnapshot, name: str) -> None:
    snapshot = make_snapshot(ODD_TREES[name])

    for hint, exclude in itertools.product(
        (None, "", ".", "..", "agents", "x/SKILL.md"), ((), ("[", "", "/", "**"))
    ):
        detection = detect_artifacts(snapshot, root_hint=hint, exclude=exclude)
        for artifact in detection.artifacts:
            assert 0 <= artifact.confidence <= 100
            assert artifact.content_sha
            assert artifact.name


class MissingObjects:
    """A tree listing whose objects are absent, as in a damaged or partial object database."""

    commit_sha = "0" * 40
    tree_sha = "1" * 40

    def __init__(self) -> None:
        self.entries = [
            TreeEntry(".claude-plugin", MODE_TREE, "2" * 40),
            TreeEntry(".claude-plugin/plugin.json", MODE_BLOB, "3" * 40),
            TreeEntry("agents", MODE_TREE, "4" * 40),
            TreeEntry("agents/a.md", MODE_BLOB, "5" * 40),
            TreeEntry("link", MODE_SYMLINK, "6" * 40),
        ]

    def read_blob(self, entry: TreeEntry) -> bytes:
        raise KeyError(entry.sha)


def test_unreadable_blobs_become_problems() -> None:
    detection = detect_artifacts(MissingObjects(), repo_name="owner/r")

    plugin = by_type(detection, ArtifactType.PLUGIN)["."]
    assert plugin.name == "r"
    assert plugin.problems
    assert set(by_type(detection, ArtifactType.AGENT)) == {"agents/a.md"}
    assert any(problem.startswith("link") for problem in detection.problems)


# --- cost ----------------------------------------------------------------------------------------


def test_detection_reads_only_the_json_that_decides_and_symlink_targets(
    make_snapshot: MakeSnapshot,
) -> None:
    snapshot = RecordingSnapshot(
        make_snapshot(
            {
                ".claude-plugin/plugin.json": json.dumps({"name": "p"}),
                ".claude-plugin/marketplace.json": json.dumps({"plugins": []}),
                ".codex-plugin/plugin.json": json.dumps({"name": "p"}),
                "skills/a/SKILL.md": SKILL,
                "skills/a/config.json": "{}",
                "agents/x.md": AGENT,
                "commands/y.md": b"Do.",
                "hooks/hooks.json": HOOKS,
                ".claude/settings.json": json.dumps({}),
                ".mcp.json": json.dumps({}),
                "package.json": json.dumps({}),
                "tsconfig.json": json.dumps({}),
                "README.md": b"# readme",
                "CLAUDE.md": Symlink("README.md"),
            }
        )
    )

    detect_artifacts(snapshot)

    assert sorted(snapshot.read_paths) == [
        ".claude-plugin/marketplace.json",
        ".claude-plugin/plugin.json",
        ".claude/settings.json",
        ".mcp.json",
        "CLAUDE.md",
        "hooks/hooks.json",
    ]
