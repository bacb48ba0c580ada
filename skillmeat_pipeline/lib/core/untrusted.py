"""Rules for what a repository holds: it is untrusted input (SPEC §2, §3).

* `printable` is the one escaping function: every text that may come from a repository (paths,
  names, manifest fields, messages that quote them) goes through it before a terminal or a log line
  shows it, so a newline cannot forge a line and an ANSI escape cannot drive the terminal.
* `screen_snapshot` leaves out of a tree the paths that cannot be stored or shown as they are
  (names that are not UTF-8, `..` segments, control characters), each with a recorded problem, so a
  bad name costs its own path and never the rest of the source.
* `check_tree_size` bounds how many entries a tree listing may hold (`SKILLMEAT_MAX_TREE_ENTRIES`):
  13 git objects can name a million paths, and a listing is built in memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from skillmeat_pipeline.lib.core.environment import number_from_env
from skillmeat_pipeline.lib.core.models import (
    ArtifactType,
    DetectedArtifact,
    Detection,
    TreeEntry,
    TreeSnapshot,
)

MAX_TREE_ENTRIES_ENV = "SKILLMEAT_MAX_TREE_ENTRIES"
# The largest repository of the corpus lists 5,313 entries (4,461 files); ten times that keeps
# every real marketplace in and a listing under ~40 MB.
DEFAULT_MAX_TREE_ENTRIES = 50_000
# Linux's PATH_MAX: a longer path is a crafted tree, and no checkout could hold it.
MAX_PATH_CHARS = 4096
# Problems recorded one by one per scan; the rest are counted in one more line.
MAX_RECORDED_PATH_PROBLEMS = 20

# C0 and C1 controls, DEL, line and paragraph separators, bidirectional and zero-width format
# characters, the byte order mark, tag characters (invisible text) and surrogates (bytes a
# decoder could not read).
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff"
    "\U000e0000-\U000e007f]"
)
# What makes a path unusable as a catalog key: controls (newline, CR, ESC), surrogates, and the
# replacement character, which is what a name that is not UTF-8 becomes on every fetch path.
_BAD_PATH_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffd]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every control, format and undecodable character written as an escape.

    `\\x1b[31m` stays visible as text instead of turning a terminal red; a byte that was not UTF-8
    (kept as a surrogate by `surrogateescape`) shows as `\\xe9`.
    """
    return _UNPRINTABLE.sub(_escape, text)


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    short = _SHORT_ESCAPES.get(match.group())
    if short is not None:
        return short
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that `surrogateescape` kept
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def path_problem(path: str) -> str | None:
    """Why `path` (from a tree listing) cannot be indexed as it is, or None when it can."""
    if len(path) > MAX_PATH_CHARS:
        return f"the path is longer than {MAX_PATH_CHARS} characters"
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            return f"the path has a {segment or 'empty'!r} segment"
    bad = _BAD_PATH_CHARS.search(path)
    if bad is None:
        return None
    if _CONTROL.search(path):
        return "the name holds control characters"
    return "the name is not valid UTF-8"


@dataclass(frozen=True, slots=True)
class SkippedPath:
    """A path left out of a tree, with everything below it."""

    path: str
    reason: str
    is_tree: bool

    def message(self) -> str:
        below = " and everything below it" if self.is_tree else ""
        return f"path '{printable(self.path)}': {self.reason}; skipped{below}"


@dataclass(slots=True)
class ScreenedSnapshot:
    """`snapshot` without its unusable paths; satisfies `TreeSnapshot`."""

    snapshot: TreeSnapshot
    commit_sha: str
    tree_sha: str
    entries: list[TreeEntry]
    skipped: list[SkippedPath] = field(default_factory=list)
    skipped_below: int = 0  # entries left out because a folder above them was

    def read_blob(self, entry: TreeEntry) -> bytes:
        return self.snapshot.read_blob(entry)

    def size_of(self, entry: TreeEntry) -> int | None:
        """The blob's size when the screened snapshot knows it without reading (the API tree)."""
        size_of = getattr(self.snapshot, "size_of", None)
        size = size_of(entry) if callable(size_of) else None
        return size if isinstance(size, int) else None


def screen_snapshot(snapshot: TreeSnapshot) -> ScreenedSnapshot:
    """The entries of `snapshot` whose paths can be stored and shown, and those left out."""
    if isinstance(snapshot, ScreenedSnapshot):
        return snapshot
    kept: list[TreeEntry] = []
    skipped: list[SkippedPath] = []
    bad_folders: set[str] = set()
    below = 0
    for entry in snapshot.entries:
        if bad_folders and _has_ancestor_in(entry.path, bad_folders):
            below += 1
            continue
        reason = path_problem(entry.path)
        if reason is None:
            kept.append(entry)
            continue
        skipped.append(SkippedPath(entry.path, reason, entry.is_tree))
        if entry.is_tree:
            bad_folders.add(entry.path)
    if not skipped:
        kept = snapshot.entries
    return ScreenedSnapshot(
        snapshot, snapshot.commit_sha, snapshot.tree_sha, kept, skipped, skipped_below=below
    )


def _has_ancestor_in(path: str, folders: set[str]) -> bool:
    cut = path.rfind("/")
    while cut > 0:
        path = path[:cut]
        if path in folders:
            return True
        cut = path.rfind("/")
    return False


_FOLDER_KINDS = (ArtifactType.SKILL, ArtifactType.PLUGIN)


def record_path_problems(screened: ScreenedSnapshot, detection: Detection) -> list[str]:
    """Put each skipped path's problem on the skill or plugin folder that holds it (the artifact
    is kept, with the problem); return the problems of the source itself (no folder holds them).

    At most `MAX_RECORDED_PATH_PROBLEMS` are recorded one by one; one more line counts the rest.
    """
    folders = {
        artifact.path: artifact
        for artifact in detection.artifacts
        if artifact.artifact_type in _FOLDER_KINDS
    }
    source_problems: list[str] = []
    for skipped in screened.skipped[:MAX_RECORDED_PATH_PROBLEMS]:
        holder = _holder(skipped.path, folders)
        if holder is not None:
            holder.problems.append(skipped.message())
        else:
            source_problems.append(skipped.message())
    more = len(screened.skipped) - MAX_RECORDED_PATH_PROBLEMS
    if more > 0:
        source_problems.append(f"{more} more unusable paths skipped")
    return source_problems


def _holder(path: str, folders: Mapping[str, DetectedArtifact]) -> DetectedArtifact | None:
    """The deepest folder artifact above `path` (`.` is the repository root)."""
    cut = path.rfind("/")
    while cut > 0:
        found = folders.get(path[:cut])
        if found is not None:
            return found
        cut = path.rfind("/", 0, cut)
    return folders.get(".")


# -- tree size -----------------------------------------------------------------------------------


class TreeTooLargeError(Exception):
    """A tree listing passed `limit` entries: the walk stopped there, nothing was indexed."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(
            f"{what}: the tree has more than {limit} entries ({MAX_TREE_ENTRIES_ENV}); the listing "
            f"stopped there and nothing was indexed. Raise {MAX_TREE_ENTRIES_ENV} if the "
            "repository really is that large"
        )
        self.limit = limit


def max_tree_entries(environ: Mapping[str, str] | None = None) -> int:
    """`SKILLMEAT_MAX_TREE_ENTRIES` (default 50,000): the most entries one tree listing holds."""
    env = os.environ if environ is None else environ
    return number_from_env(
        env, MAX_TREE_ENTRIES_ENV, int, DEFAULT_MAX_TREE_ENTRIES, allow_zero=False
    )


def check_tree_size(count: int, limit: int, what: str) -> None:
    """Raise `TreeTooLargeError` once a listing of `what` holds more than `limit` entries."""
    if count > limit:
        raise TreeTooLargeError(what, limit)
