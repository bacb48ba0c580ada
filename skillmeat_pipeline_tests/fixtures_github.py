"""Helpers for the GitHub emulator and API tests: corpus layouts, small synthetic repositories."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pygit2

from skillmeat_pipeline.lib.core.models import MODE_BLOB, MODE_SYMLINK, MODE_TREE, TreeEntry
from skillmeat_pipeline.testing.github_emulator import layout_bundle
from skillmeat_pipeline_tests.conftest import corpus_dir

TOKEN = "ghp_TESTTOKENabcdefghijklmnopqrstuvwxyz0123"


def layout_corpus(root: Path, names: Iterable[str]) -> Path:
    """`root/<owner>/<repo>.git` bare clones of the named corpus bundles (`owner+repo`)."""
    for name in names:
        layout_bundle(corpus_dir() / f"{name}.bundle", root)
    return root


def open_bare(root: Path, full_name: str) -> pygit2.Repository:
    owner, name = full_name.split("/")
    return pygit2.Repository(str(root / owner / f"{name}.git"))


def manifest_entries(entries: Iterable[TreeEntry]) -> list[TreeEntry]:
    """Every Markdown and JSON file: a superset of what extraction reads for any artifact."""
    return [e for e in entries if (e.is_blob or e.is_symlink) and e.path.endswith((".md", ".json"))]


def make_repo(
    path: Path,
    files: Mapping[str, bytes],
    *,
    symlinks: Mapping[str, str] | None = None,
    branch: str = "main",
) -> pygit2.Repository:
    """A bare repository with one commit on `branch` (HEAD) holding `files` and `symlinks`."""
    repo = pygit2.init_repository(str(path), bare=True)
    tree: dict[str, object] = {}
    for file_path, content in files.items():
        _insert(tree, file_path, (repo.create_blob(content), MODE_BLOB))
    for link_path, target in (symlinks or {}).items():
        _insert(tree, link_path, (repo.create_blob(target.encode()), MODE_SYMLINK))
    signature = pygit2.Signature("Test", "test@example.com", 1_700_000_000, 0)
    tree_id = _write_tree(repo, tree)
    repo.create_commit(f"refs/heads/{branch}", signature, signature, "fixture", tree_id, [])
    repo.set_head(f"refs/heads/{branch}")
    return repo


def _insert(tree: dict[str, object], path: str, leaf: tuple[pygit2.Oid, int]) -> None:
    *dirs, name = path.split("/")
    node = tree
    for part in dirs:
        node = node.setdefault(part, {})  # type: ignore[assignment]
    node[name] = leaf


def _write_tree(repo: pygit2.Repository, tree: dict[str, object]) -> pygit2.Oid:
    builder = repo.TreeBuilder()
    for name, value in tree.items():
        if isinstance(value, dict):
            builder.insert(name, _write_tree(repo, value), MODE_TREE)
        else:
            oid, mode = value  # type: ignore[misc]
            builder.insert(name, oid, mode)
    return builder.write()


RawTree = dict[bytes, "bytes | pygit2.Oid | RawTree"]


def make_raw_repo(
    path: Path,
    tree: RawTree | Callable[[pygit2.Repository], RawTree],
    *,
    branch: str = "main",
) -> pygit2.Repository:
    """A bare repository with one commit whose tree is written object by object, so names may be
    anything git's format can hold (bytes that are not UTF-8, `..`, newlines, escapes, `/`), as a
    crafted push would have them. A value is a file's content, a dict for a folder, or the id of
    a tree already written (`tree` as a function of the new repository can write some first)."""
    repo = pygit2.init_repository(str(path), bare=True)
    signature = pygit2.Signature("Test", "test@example.com", 1_700_000_000, 0)
    tree_id = write_raw_tree(repo, tree(repo) if callable(tree) else tree)
    repo.create_commit(f"refs/heads/{branch}", signature, signature, "crafted", tree_id, [])
    repo.set_head(f"refs/heads/{branch}")
    return repo


def write_raw_tree(repo: pygit2.Repository, tree: RawTree) -> pygit2.Oid:
    """A tree object from raw bytes; values are blob contents, dicts (folders) or tree ids."""
    entries: list[tuple[bytes, bytes, pygit2.Oid]] = []
    for name, value in tree.items():
        if isinstance(value, dict):
            entries.append((b"40000", name, write_raw_tree(repo, value)))
        elif isinstance(value, pygit2.Oid):
            entries.append((b"40000", name, value))
        else:
            entries.append((b"100644", name, repo.create_blob(value)))
    # git's order: a folder sorts as if its name ended with "/"
    entries.sort(key=lambda e: e[1] + (b"/" if e[0] == b"40000" else b""))
    data = b"".join(mode + b" " + name + b"\0" + oid.raw for mode, name, oid in entries)
    return repo.odb.write(pygit2.enums.ObjectType.TREE, data)
