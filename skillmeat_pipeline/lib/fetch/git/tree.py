"""Read a source tree straight from a git object database (no work tree is ever written)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from skillmeat_pipeline.lib.core.models import MODE_TREE, TreeEntry
from skillmeat_pipeline.lib.core.untrusted import check_tree_size, max_tree_entries


class RepositoryError(Exception):
    """A local repository, bundle or ref that cannot be read; the message is for users."""


def list_tree(tree: pygit2.Tree, *, max_entries: int | None = None) -> list[TreeEntry]:
    """Every entry below `tree`, sorted; trees included, so directories carry their own SHA.

    A name that is not UTF-8 is decoded with U+FFFD for each bad byte, as GitHub's JSON shows it,
    so both fetch paths list the same path (`screen_snapshot` then leaves it out). The walk stops
    with `TreeTooLargeError` past `max_entries` (default `SKILLMEAT_MAX_TREE_ENTRIES`): a few
    objects that name one subtree many times expand to millions of paths.
    """
    limit = max_tree_entries() if max_entries is None else max_entries
    entries: list[TreeEntry] = []
    stack: list[tuple[str, pygit2.Tree]] = [("", tree)]
    while stack:
        prefix, current = stack.pop()
        check_tree_size(len(entries) + len(current), limit, f"tree {tree.id}")
        for obj in current:
            path = prefix + (obj.raw_name or b"").decode("utf-8", "replace")
            mode = int(obj.filemode)
            entries.append(TreeEntry(path, mode, str(obj.id)))
            if mode == MODE_TREE and isinstance(obj, pygit2.Tree):
                stack.append((path + "/", obj))
    entries.sort(key=lambda e: e.path)
    return entries


@dataclass(slots=True)
class GitTreeSnapshot:
    """A commit's tree read from a local object database; satisfies `TreeSnapshot`."""

    repo: pygit2.Repository
    commit_sha: str
    tree_sha: str
    entries: list[TreeEntry]
    blob_reads: int = field(default=0)

    def read_blob(self, entry: TreeEntry) -> bytes:
        self.blob_reads += 1
        # straight from the object database: a third of the time of `repo[sha].data`, which
        # looks the object up by prefix and wraps it first (a scan reads every text file)
        kind, data = self.repo.odb.read(entry.sha)
        if kind != pygit2.enums.ObjectType.BLOB:
            raise ValueError(f"{entry.path}: {entry.sha} is not a blob")
        return data


# the first line of a git bundle, by version (gitformat-bundle(5))
BUNDLE_SIGNATURES = (b"# v2 git bundle\n", b"# v3 git bundle\n")


def snapshot_commit(
    repo: pygit2.Repository, ref: str | None = None, *, max_entries: int | None = None
) -> GitTreeSnapshot:
    """The tree of `ref` (branch, tag, remote-tracking ref or SHA; default HEAD) in `repo`.

    `max_entries`: see `list_tree`.
    """
    spec = ref or "HEAD"
    candidates = [spec] if ref is None else [spec, f"refs/remotes/origin/{spec}", f"origin/{spec}"]
    if ref is None and repo.head_is_unborn:
        # a bundle made without HEAD: its only branch is what it holds
        branches = sorted(repo.branches.local)
        if len(branches) != 1:
            listed = ", ".join(branches[:10]) or "none"
            raise RepositoryError(
                f"has no HEAD and {len(branches)} branches; give --ref ({listed})"
            )
        candidates = [f"refs/heads/{branches[0]}"]
    for candidate in candidates:
        try:
            commit = repo.revparse_single(candidate).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            continue
        tree = commit.tree
        entries = list_tree(tree, max_entries=max_entries)
        return GitTreeSnapshot(repo, str(commit.id), str(tree.id), entries)
    raise RepositoryError(f"ref {spec!r} not found")


@contextlib.contextmanager
def open_local_repository(location: str | Path) -> Iterator[pygit2.Repository]:
    """Open a local repository (bare or with a work tree) or a git bundle file.

    A bundle is unpacked with the git CLI into a private temporary bare repository, removed on exit.
    """
    path = Path(location)
    if not path.exists():
        raise RepositoryError(f"{location}: no such file or directory")
    if path.is_file():
        with path.open("rb") as file:
            signature = file.read(len(BUNDLE_SIGNATURES[0]))
        if signature not in BUNDLE_SIGNATURES:
            raise RepositoryError(
                f"{location}: a file that is not a git bundle; give a repository folder, a "
                "bundle made by `git bundle create`, or a git URL"
            )
        with tempfile.TemporaryDirectory(prefix="skillmeat-bundle-") as tmp:
            target = Path(tmp) / "repo.git"
            if shutil.which("git") is None:
                raise RepositoryError(
                    "reading a git bundle needs the git command, which is not on PATH"
                )
            result = subprocess.run(
                ["git", "clone", "--quiet", "--bare", str(path), str(target)],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
                raise RepositoryError(f"{location}: not a git bundle ({message})")
            yield pygit2.Repository(str(target))
        return
    discovered = pygit2.discover_repository(str(path))
    if discovered is None:
        raise RepositoryError(f"{location}: not a git repository")
    yield pygit2.Repository(discovered)
