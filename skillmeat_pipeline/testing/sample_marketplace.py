"""A sample marketplace whose entries point at other repositories (SPEC §2.1), for tests, the
demo and the benchmark.

`acme/market` lists plugins of every form: `github` (plain, with a `ref`, pinned by `sha`), `url`
(on the GitHub host, and on another host when one is given), two `git-subdir` entries into one
repository, a relative path, `npm`, an unknown form, a repository, a ref and a pin that do not
exist, an invalid name, a duplicate name and an entry pointing back at the marketplace itself.
Every repository allows fetching a commit by id, as GitHub does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from skillmeat_pipeline.lib.core.models import MODE_BLOB, MODE_TREE

MARKET = "acme/market"
BRANCH = "main"
MISSING_PIN = "0123456789abcdef0123456789abcdef01234567"
_SIGNATURE_TIME = 1_735_722_000


def _skill(name: str, description: str) -> bytes:
    return f"---\nname: {name}\ndescription: {description}\n---\n# {name}\n".encode()


def _doc(name: str, description: str) -> bytes:
    return f"---\nname: {name}\ndescription: {description}\n---\nDo the thing.\n".encode()


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2).encode()


ALPHA = {
    ".claude-plugin/plugin.json": _json({"name": "alpha", "description": "Linting helpers"}),
    "skills/lint/SKILL.md": _skill("lint", "Lints Python files with ruff"),
    "commands/fix.md": _doc("fix", "Fixes what the linter found"),
}
ALPHA_STABLE = {**ALPHA, "skills/stable-only/SKILL.md": _skill("stable-only", "Only on stable")}
BETA = {"agents/reviewer.md": _doc("reviewer", "Reviews pull requests for security holes")}
BETA_NEXT = {**BETA, "agents/tester.md": _doc("tester", "Writes property-based tests")}
GAMMA = {
    ".claude-plugin/plugin.json": _json({"name": "gamma", "description": "Gamma rays"}),
    "skills/gamma-skill/SKILL.md": _skill("gamma-skill", "Measures radiation doses"),
}
MONO = {
    "plugins/a/skills/a-skill/SKILL.md": _skill("a-skill", "Plans database migrations"),
    "plugins/b/.claude-plugin/plugin.json": _json({"name": "b", "description": "B tools"}),
    "plugins/b/commands/b-cmd.md": _doc("b-cmd", "Bumps versions"),
    "plugins/c/skills/c-skill/SKILL.md": _skill("c-skill", "Not listed by the marketplace"),
}
DELTA = {"skills/delta/SKILL.md": _skill("delta", "Summarises changelogs")}


@dataclass(frozen=True)
class SampleMarketplace:
    """What was built: commits by name, and how each entry should end (SPEC §2.1)."""

    commits: Mapping[str, str]
    entries: list[dict[str, Any]]
    scanned: Mapping[str, int]  # plugin name -> artifacts its plugin source holds
    failed: Mapping[str, str]  # plugin name -> words its failure reason holds
    skipped: Mapping[str, str]  # plugin name -> words its skip reason holds
    problems: int  # entries recorded as problems on the marketplace (invalid, duplicate)
    extra_files: Mapping[str, bytes] = field(default_factory=dict)


def commit_files(
    root: str | Path,
    slug: str,
    files: Mapping[str, bytes],
    *,
    branch: str = BRANCH,
    message: str = "update",
    tick: int = 0,
) -> str:
    """Commit exactly `files` on `branch` of `root/<slug>.git` (created bare if missing), on top
    of the branch's tip as a push would; the new commit id."""
    path = Path(root) / f"{slug}.git"
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
    repo = (
        pygit2.init_repository(str(path), bare=True, initial_head=BRANCH)
        if created
        else pygit2.Repository(str(path))
    )
    try:
        # what GitHub allows too: a pinned commit is fetched by its id at depth 1
        repo.config["uploadpack.allowReachableSHA1InWant"] = True
        reference = repo.references.get(f"refs/heads/{branch}")
        if reference is None and branch != BRANCH:
            reference = repo.references.get(f"refs/heads/{BRANCH}")
        parents = [reference.peel(pygit2.Commit).id] if reference is not None else []
        signature = pygit2.Signature("Sample", "sample@example.com", _SIGNATURE_TIME + tick, 0)
        commit = repo.create_commit(
            None, signature, signature, message, _write_tree(repo, _nested(files)), parents
        )
        repo.references.create(f"refs/heads/{branch}", commit, force=True)
        return str(commit)
    finally:
        repo.free()


def _nested(files: Mapping[str, bytes]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, content in files.items():
        *folders, name = path.split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = content
    return tree


def _write_tree(repo: pygit2.Repository, tree: Mapping[str, Any]) -> pygit2.Oid:
    builder = repo.TreeBuilder()
    for name, value in sorted(tree.items()):
        if isinstance(value, dict):
            builder.insert(name, _write_tree(repo, value), MODE_TREE)
        else:
            builder.insert(name, repo.create_blob(value), MODE_BLOB)
    return builder.write()


def marketplace_json(entries: list[dict[str, Any]]) -> bytes:
    return _json({"name": "acme", "owner": {"name": "Acme"}, "plugins": entries})


def market_files(entries: list[dict[str, Any]]) -> dict[str, bytes]:
    return {
        ".claude-plugin/marketplace.json": marketplace_json(entries),
        "plugins/local/skills/local-skill/SKILL.md": _skill("local-skill", "A plugin at home"),
    }


def build_sample_marketplace(
    root: str | Path, *, other_host_url: str | None = None, other_root: str | Path | None = None
) -> SampleMarketplace:
    """Every repository of the sample marketplace under `root` (GitHub and git server), and
    `other/delta` under `other_root`, served at `other_host_url` (a second git host), if given."""
    commits = {
        "alpha": commit_files(root, "tools/alpha", ALPHA),
        "beta": commit_files(root, "tools/beta", BETA),
        "gamma": commit_files(root, "tools/gamma", GAMMA),
        "mono": commit_files(root, "tools/mono", MONO),
    }
    commits["alpha-stable"] = commit_files(root, "tools/alpha", ALPHA_STABLE, branch="stable")
    gh = {"source": "github", "repo": "tools/alpha"}
    entries: list[dict[str, Any]] = [
        {"name": "alpha", "description": "From the entry", "source": gh},
        {"name": "alpha-stable", "source": {**gh, "ref": "stable"}},
        {
            "name": "beta",
            "description": "Security review agents",
            "source": {"source": "github", "repo": "tools/beta", "sha": commits["beta"]},
        },
        {"name": "gamma", "source": {"source": "url", "url": "https://github.com/tools/gamma.git"}},
        {
            "name": "mono-a",
            "description": "Migration planning",
            "source": {
                "source": "git-subdir",
                "url": "https://github.com/tools/mono",
                "path": "plugins/a",
            },
        },
        {
            "name": "mono-b",
            "source": {
                "source": "git-subdir",
                "url": "https://github.com/tools/mono.git",
                "path": "plugins/b",
            },
        },
        {"name": "local", "description": "Helpers kept at home", "source": "./plugins/local"},
        {"name": "pkg", "source": {"source": "npm", "package": "@acme/pkg"}},
        {"name": "odd", "source": {"source": "pip", "package": "acme"}},
        {"name": "gone", "source": {"source": "github", "repo": "tools/does-not-exist"}},
        {"name": "no-ref", "source": {**gh, "ref": "no-such-branch"}},
        {
            "name": "no-pin",
            "source": {"source": "github", "repo": "tools/beta", "sha": MISSING_PIN},
        },
        {"name": "bad,name", "source": gh},
        {"name": "alpha", "source": {"source": "github", "repo": "tools/gamma"}},
        {"name": "myself", "source": {"source": "github", "repo": MARKET}},
    ]
    scanned = {"alpha": 3, "alpha-stable": 4, "beta": 2, "gamma": 2, "mono-a": 2, "mono-b": 2}
    if other_host_url and other_root:
        commits["delta"] = commit_files(other_root, "other/delta", DELTA)
        delta = {"source": "url", "url": f"{other_host_url.rstrip('/')}/other/delta.git"}
        entries.insert(6, {"name": "delta", "source": delta})
        scanned["delta"] = 2
    commits["market"] = commit_files(root, MARKET, market_files(entries))
    return SampleMarketplace(
        commits=commits,
        entries=entries,
        scanned=scanned,
        failed={"gone": "does-not-exist", "no-ref": "no-such-branch", "no-pin": MISSING_PIN},
        skipped={"pkg": "npm", "odd": "unknown source form", "myself": "own repository"},
        problems=2,
    )
