"""Sample marketplace repositories, made by the project itself, for the demo and its tests.

Five repositories of different sizes, so that every strategy of SPEC §4 gets picked, with a few of
the traps real repositories hold (shared/corpus/README.md): agent descriptions with unquoted
`<example>` blocks, `description: |` and `>` block scalars, a SKILL.md without frontmatter, an
`agents/` folder inside a skill, React `hooks/` folders, `.mcp.json` files with and without the
`mcpServers` wrapper, agents declared only by `plugin.json`, a marketplace entry pointing at a
folder that does not exist, a lower-case `skill.md`, CRLF line endings, a BOM, and artifact-shaped
test fixtures. Their files are in `sample_files.py`, `sample_files_marketplace.py` and
`sample_files_ops.py`; this module writes them as git repositories.

Everything is deterministic: fixed author, dates and content, so the commit SHAs are the same on
every machine and every run.

    repos = build_sample_repos(root)          # root/<owner>/<repo>.git, bare
    apply_update(root, SAMPLE_UPDATE)         # a second commit ("a push") to one repository
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from skillmeat_pipeline.lib.core.models import MODE_BLOB, MODE_TREE
from skillmeat_pipeline.testing.sample_files import TEAM_TOOLKIT, TINY_TOOLS, WRITING_SKILLS
from skillmeat_pipeline.testing.sample_files_marketplace import MARKETPLACE
from skillmeat_pipeline.testing.sample_files_ops import OPS_PLAYBOOKS, OPS_PLAYBOOKS_PUSH

AUTHOR = ("Sample Author", "samples@skillmeat.invalid")
FIRST_COMMIT_TIME = 1_735_722_000  # 2025-01-01 09:00 UTC
UPDATE_COMMIT_TIME = 1_736_326_800  # a week later
BRANCH = "main"


@dataclass(frozen=True)
class SampleRepo:
    """One sample repository and what SPEC §3 finds in it (its first commit)."""

    slug: str  # owner/repo, as served by the git server and the GitHub emulator
    summary: str
    on_github: bool  # a GitHub source (API path and tree-call sizing) or a plain git URL
    files: Mapping[str, bytes]
    expected: Mapping[str, int]  # artifacts per kind
    options: Mapping[str, Any] = field(default_factory=dict)  # extra sources-file fields

    @property
    def artifact_count(self) -> int:
        return sum(self.expected.values())

    def source_entry(self, git_base_url: str) -> dict[str, Any]:
        """This repository's entry in a sources file; plain git sources get a URL of the server."""
        if self.on_github:
            return {"github": self.slug, **self.options}
        return {"key": self.slug, "url": f"{git_base_url}/{self.slug}.git", **self.options}


@dataclass(frozen=True)
class SampleUpdate:
    """A second commit to one sample repository: paths to write, or to delete (None)."""

    slug: str
    message: str
    changes: Mapping[str, bytes | None]
    expected: Mapping[str, int]  # artifacts per kind after the update


SAMPLE_REPOS: tuple[SampleRepo, ...] = (
    SampleRepo(
        slug="acme/tiny-tools",
        summary="GitHub, 2 artifacts: read over the REST API",
        on_github=True,
        files=TINY_TOOLS,
        expected={"skill": 1, "command": 1},
    ),
    SampleRepo(
        slug="acme/team-toolkit",
        summary="GitHub, 10 artifacts, no common root: sparse_manifest",
        on_github=True,
        files=TEAM_TOOLKIT,
        expected={"skill": 1, "agent": 2, "command": 3, "hook": 1, "mcp": 3},
    ),
    SampleRepo(
        slug="acme/plugin-marketplace",
        summary="GitHub, 32 artifacts under plugins/: sparse_directory",
        on_github=True,
        files=MARKETPLACE,
        expected={"skill": 7, "agent": 8, "command": 7, "hook": 2, "mcp": 3, "plugin": 5},
    ),
    SampleRepo(
        slug="internal/ops-playbooks",
        summary="plain git, 25 artifacts under .claude/: sparse_manifest, then sparse_directory",
        on_github=False,
        files=OPS_PLAYBOOKS,
        expected={"skill": 7, "agent": 8, "command": 8, "hook": 1, "mcp": 1},
    ),
    SampleRepo(
        slug="acme/writing-skills",
        summary="GitHub, 2 skills with deep_indexing: sparse_directory",
        on_github=True,
        files=WRITING_SKILLS,
        expected={"skill": 2},
        options={"deep_indexing": True},
    ),
)

# "A push" to the plain git source: one command added, one agent changed, one command deleted.
SAMPLE_UPDATE = SampleUpdate(
    slug="internal/ops-playbooks",
    message="Add /incident:escalate, update db-admin, drop the cost report",
    changes=OPS_PLAYBOOKS_PUSH,
    expected={"skill": 7, "agent": 8, "command": 8, "hook": 1, "mcp": 1},
)


def sample_repos() -> list[SampleRepo]:
    return list(SAMPLE_REPOS)


# -- writing the repositories ----------------------------------------------------------------------


def _signature(when: int) -> pygit2.Signature:
    return pygit2.Signature(AUTHOR[0], AUTHOR[1], when, 0)


def _insert(tree: dict[str, Any], path: str, content: bytes | None) -> None:
    *folders, name = path.split("/")
    node = tree
    for folder in folders:
        node = node.setdefault(folder, {})
    if content is None:
        node.pop(name, None)
    else:
        node[name] = content


def _write_tree(repo: pygit2.Repository, tree: Mapping[str, Any]) -> pygit2.Oid:
    builder = repo.TreeBuilder()
    for name, value in sorted(tree.items()):
        if isinstance(value, dict):
            if value:  # git has no empty folders
                builder.insert(name, _write_tree(repo, value), MODE_TREE)
        else:
            builder.insert(name, repo.create_blob(value), MODE_BLOB)
    return builder.write()


def _nested(files: Mapping[str, bytes]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, content in files.items():
        _insert(tree, path, content)
    return tree


def build_sample_repo(root: str | Path, sample: SampleRepo) -> Path:
    """`root/<owner>/<repo>.git`: a bare repository with one commit on `main` (HEAD)."""
    path = Path(root) / f"{sample.slug}.git"
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    repo = pygit2.init_repository(str(path), bare=True, initial_head=BRANCH)
    try:
        tree_id = _write_tree(repo, _nested(sample.files))
        signature = _signature(FIRST_COMMIT_TIME)
        repo.create_commit(
            f"refs/heads/{BRANCH}", signature, signature, "Initial import", tree_id, []
        )
    finally:
        repo.free()
    return path


def build_sample_repos(root: str | Path) -> list[SampleRepo]:
    """Every sample repository under `root`, laid out as the git server and emulator serve them."""
    for sample in SAMPLE_REPOS:
        build_sample_repo(root, sample)
    return sample_repos()


def apply_update(root: str | Path, update: SampleUpdate = SAMPLE_UPDATE) -> str:
    """Commit `update` on top of its repository's `main`, as a push would; the new commit SHA."""
    sample = next(s for s in SAMPLE_REPOS if s.slug == update.slug)
    repo = pygit2.Repository(str(Path(root) / f"{update.slug}.git"))
    try:
        parent = repo.references[f"refs/heads/{BRANCH}"].peel(pygit2.Commit)
        tree = _nested(sample.files)
        for path, content in update.changes.items():
            _insert(tree, path, content)
        signature = _signature(UPDATE_COMMIT_TIME)
        commit = repo.create_commit(
            f"refs/heads/{BRANCH}",
            signature,
            signature,
            update.message,
            _write_tree(repo, tree),
            [parent.id],
        )
        return str(commit)
    finally:
        repo.free()
