"""The tree as detection sees it (`TreeView`): the paths in scope (`root_hint`, the default ignore
list, `exclude` globs), symlinks followed within the repository, blob and JSON reads.

Odd input never raises: a symlink that leads nowhere or a file that cannot be read is a problem on
the view's `problems`, which the detection reports.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from skillmeat_pipeline.lib.core.manifests import parse_json_manifest
from skillmeat_pipeline.lib.core.models import TreeEntry, TreeSnapshot

DEFAULT_IGNORED_SEGMENTS = frozenset(
    {
        ".git",
        "node_modules",
        "vendor",
        ".venv",
        "venv",
        "__pycache__",
        "site-packages",
        "dist",
        "build",
        ".tox",
        ".next",
        "target",
        "fixtures",
        "__fixtures__",
        "testdata",
        "test-data",
        "test_data",
        "__snapshots__",
    }
)
# The same bound Linux puts on a chain of symlinks; beyond it the chain is treated as a loop.
MAX_SYMLINK_HOPS = 40


def parent(path: str) -> str:
    return path.rpartition("/")[0]


def basename(path: str) -> str:
    return path.rpartition("/")[2]


def ancestors(path: str) -> Iterator[str]:
    """The folders holding `path`, nearest first, ending with the root `""`."""
    while path:
        path = parent(path)
        yield path


def _normalize_root_hint(root_hint: str | None) -> str:
    if not root_hint:
        return ""
    cleaned = posixpath.normpath(root_hint.strip().strip("/"))
    return "" if cleaned in (".", "") else cleaned


@dataclass(frozen=True, slots=True)
class _ExcludePattern:
    regex: re.Pattern[str]
    matches_segment: bool  # no `/` in the pattern: it names a file or folder at any depth

    @classmethod
    def compile(cls, pattern: str) -> list[_ExcludePattern]:
        stripped = pattern.strip()
        anchored = stripped.startswith(("/", "./"))
        cleaned = stripped.removeprefix("./").strip("/")
        if not cleaned:
            return []
        matches_segment = "/" not in cleaned and not anchored
        compiled = [cls(re.compile(fnmatch.translate(cleaned)), matches_segment)]
        if cleaned.startswith("**/"):
            # `**/x` also means `x` at the root, which fnmatch's `*` (one or more chars) misses.
            compiled.extend(cls.compile(cleaned[3:]))
        return compiled

    def excludes(self, path: str) -> bool:
        if self.matches_segment:
            return any(self.regex.match(segment) for segment in path.split("/"))
        prefix = path
        while prefix:
            if self.regex.match(prefix):
                return True
            prefix = parent(prefix)
        return False


@dataclass(slots=True)
class TreeView:
    """`snapshot` as detection sees it: in-scope paths, symlinked folders followed, symlinked files
    mapped to the blob they lead to. The root folder is ""."""

    snapshot: TreeSnapshot
    root_hint: str | None
    exclude: Sequence[str]
    problems: list[str] = field(init=False, default_factory=list)
    root: str = field(init=False, default="")
    excludes: list[_ExcludePattern] = field(init=False, default_factory=list)
    by_path: dict[str, TreeEntry] = field(init=False, default_factory=dict)
    files: dict[str, TreeEntry] = field(init=False, default_factory=dict)
    dirs: dict[str, str] = field(init=False, default_factory=dict)
    # paths reached through a symlink -> the real path
    real_paths: dict[str, str] = field(init=False, default_factory=dict)
    symlinks: dict[str, str] = field(init=False, default_factory=dict)
    link_targets: dict[str, str | None] = field(init=False, default_factory=dict)
    json_cache: dict[str, tuple[Any, list[str]]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.root = _normalize_root_hint(self.root_hint)
        self.excludes = [c for p in self.exclude for c in _ExcludePattern.compile(p)]
        self.by_path = {entry.path: entry for entry in self.snapshot.entries}
        if self.root and not any(
            path == self.root or path.startswith(self.root + "/") for path in self.by_path
        ):
            self.problems.append(
                f"root_hint {self.root!r} matches no folder of the repository: nothing below it "
                "to index (folder names are case-sensitive)"
            )
        self._build_view()

    def _in_scope(self, path: str) -> bool:
        if self.root:
            if path != self.root and not path.startswith(self.root + "/"):
                return False
            # A root_hint the user chose wins over the ignore list (`build/skills` stays indexable).
            relative = path[len(self.root) + 1 :]
        else:
            relative = path
        if relative and any(s in DEFAULT_IGNORED_SEGMENTS for s in relative.split("/")):
            return False
        return not any(pattern.excludes(path) for pattern in self.excludes)

    def _build_view(self) -> None:
        if self._in_scope(""):
            self.dirs[""] = self.snapshot.tree_sha
        links: list[TreeEntry] = []
        for entry in self.snapshot.entries:
            if not self._in_scope(entry.path):
                continue
            if entry.is_tree:
                self.dirs[entry.path] = entry.sha
            elif entry.is_blob:
                self.files[entry.path] = entry
            elif entry.is_symlink:
                links.append(entry)
            # gitlinks (submodules) are another repository's commit, absent from this tree
        followed: set[str] = set()
        # Reversed so that pop() takes them in path order: of two links to one folder, the first
        # is the one followed.
        pending = [(link.path, link) for link in reversed(links)]
        while pending:
            view_path, link = pending.pop()
            pending.extend(self._follow_symlink(view_path, link, followed))

    def _link_target(self, link: TreeEntry) -> str | None:
        if link.path not in self.link_targets:
            data = self._read(link)
            try:
                self.link_targets[link.path] = None if data is None else data.decode("utf-8")
            except UnicodeDecodeError:
                self.problems.append(f"symlink {link.path}: target is not UTF-8")
                self.link_targets[link.path] = None
        return self.link_targets[link.path]

    def _resolve(self, path: str) -> tuple[str | None, str]:
        """The real path that `path` leads to through any symlinks ("" for the root), or None and
        the reason it leads nowhere."""
        pending = path.split("/")
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            entry = self.by_path.get("/".join([*resolved, part]))
            if entry is None or not entry.is_symlink:
                resolved.append(part)
                continue
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return None, "a symlink loop"
            target = self._link_target(entry)
            if target is None:
                return None, "an unreadable target"
            joined = posixpath.normpath(posixpath.join("/".join(resolved), target))
            if target.startswith("/") or joined == ".." or joined.startswith("../"):
                return None, "a target outside the repository"
            resolved = []
            pending = ([] if joined == "." else joined.split("/")) + pending
        real = "/".join(resolved)
        if real and real not in self.by_path:
            return None, "a target that does not exist"
        return real, ""

    def _follow_symlink(
        self, view_path: str, link: TreeEntry, followed: set[str]
    ) -> list[tuple[str, TreeEntry]]:
        """Map a symlink into the view; returns the symlinks found inside a folder it follows."""
        target = self._link_target(link)
        self.symlinks[view_path] = target if target is not None else ""
        real, reason = self._resolve(link.path)
        if real is None:
            self.problems.append(f"symlink {view_path} -> {target}: {reason}, not followed")
            return []
        entry = self.by_path.get(real)
        if entry is not None and entry.is_blob:
            self.files[view_path] = entry
            self.real_paths[view_path] = real
            return []
        if entry is not None and not entry.is_tree:
            return []
        # A folder inside the scope is visited at its real path already; following it too would
        # find its artifacts twice. Folders outside root_hint are followed once.
        if self._in_scope(real) or real in followed:
            return []
        if any(s in DEFAULT_IGNORED_SEGMENTS for s in real.split("/")) or any(
            pattern.excludes(real) for pattern in self.excludes
        ):
            return []
        followed.add(real)
        self.dirs[view_path] = entry.sha if entry is not None else self.snapshot.tree_sha
        self.real_paths[view_path] = real
        prefix = f"{real}/" if real else ""
        nested: list[tuple[str, TreeEntry]] = []
        for inner in self.snapshot.entries:
            if not inner.path.startswith(prefix) or self._in_scope(inner.path):
                continue
            inner_view = f"{view_path}/{inner.path[len(prefix) :]}"
            if not self._in_scope(inner_view):
                continue
            self.real_paths[inner_view] = inner.path
            if inner.is_tree:
                self.dirs[inner_view] = inner.sha
            elif inner.is_blob:
                self.files[inner_view] = inner
            elif inner.is_symlink:
                nested.append((inner_view, inner))
        return nested

    # --- reading blobs and JSON -------------------------------------------------------------------

    def _read(self, entry: TreeEntry) -> bytes | None:
        try:
            return self.snapshot.read_blob(entry)
        except (LookupError, ValueError, OSError) as exc:
            # A missing object or unreadable file is odd input; network errors propagate so the
            # caller can retry the scan.
            self.problems.append(f"{entry.path}: could not be read ({exc})")
            return None

    def read_json(self, view_path: str) -> tuple[Any, list[str]]:
        entry = self.files[view_path]
        if entry.path not in self.json_cache:
            data = self._read(entry)
            if data is None:
                self.json_cache[entry.path] = (None, ["could not be read"])
            else:
                value, problems = parse_json_manifest(data)
                self.json_cache[entry.path] = (value, problems)
        value, problems = self.json_cache[entry.path]
        return value, [f"{view_path}: {problem}" for problem in problems]

    def is_folder(self, path: str) -> bool:
        real, _ = self._resolve("" if path == "." else path)
        return real == "" or (real is not None and self.by_path[real].is_tree)
