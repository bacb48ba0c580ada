"""The files the trust rules read, and which artifact a finding belongs to.

SPEC §5.5: "every text file up to 256 KB below the artifact's root". Which files an artifact owns
is decided once, in `core.files` (the same selection as deep indexing, so one read of a blob can
serve both).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from skillmeat_pipeline.lib.core.files import ArtifactLike, artifact_file_paths, owns_file
from skillmeat_pipeline.lib.core.findings import Finding
from skillmeat_pipeline.lib.core.models import ArtifactType, TreeEntry, TreeSnapshot
from skillmeat_pipeline.lib.trust.scan import MAX_FILE_BYTES, is_text


@dataclass(frozen=True, slots=True)
class TextFiles:
    """What `read_text_files` read: text by path, and the paths that could not be read, why."""

    files: dict[str, bytes] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)


def read_text_files(snapshot: TreeSnapshot, paths: Iterable[str]) -> TextFiles:
    """The text files (≤ 256 KB) among `paths`, each blob read once, in path order.

    Paths that are not blobs of the tree (a symlinked manifest, a missing one) are skipped; a
    blob the snapshot reports larger than 256 KB (`size_of`, the API tree) is never read.
    """
    blobs: dict[str, TreeEntry] = {e.path: e for e in snapshot.entries if e.is_blob}
    size_of = getattr(snapshot, "size_of", None)
    result = TextFiles()
    for path in sorted(set(paths) & blobs.keys()):
        entry = blobs[path]
        size = size_of(entry) if callable(size_of) else None
        if isinstance(size, int) and size > MAX_FILE_BYTES:
            continue
        try:
            data = snapshot.read_blob(entry)
        except (LookupError, ValueError, OSError) as exc:
            result.unreadable[path] = str(exc) or type(exc).__name__
            continue
        if len(data) <= MAX_FILE_BYTES and is_text(path, data):
            result.files[path] = data
    return result


def read_artifact_files(
    snapshot: TreeSnapshot, artifacts: Iterable[ArtifactLike]
) -> dict[str, bytes]:
    """Every text file (≤ 256 KB) of `artifacts` in `snapshot`, each blob read once."""
    blob_paths = sorted(e.path for e in snapshot.entries if e.is_blob)
    wanted: set[str] = set()
    for artifact in artifacts:
        wanted.update(artifact_file_paths(artifact, blob_paths))
    return read_text_files(snapshot, wanted).files


def findings_of(
    artifact: ArtifactLike,
    findings: Iterable[Finding],
    files: Mapping[str, bytes] | None = None,
) -> list[Finding]:
    """The findings in `artifact`'s files (all findings of a repository can be computed once).

    An MCP server declared in a file with others (`<file>#<name>`) gets, from that file, only the
    findings on the lines of its own entry, when `files` holds the file's text.
    """
    owned = [finding for finding in findings if owns_file(artifact, finding.file)]
    manifest = artifact.manifest_path
    if artifact.artifact_type is not ArtifactType.MCP or not manifest or files is None:
        return owned
    data = files.get(manifest)
    if data is None or not artifact.path.startswith(manifest + "#"):
        return owned
    lines = _entry_lines(data.decode("utf-8", "replace"), artifact.path[len(manifest) + 1 :])
    if lines is None:
        return owned
    return [f for f in owned if f.file != manifest or f.line in lines]


def _entry_lines(text: str, name: str) -> set[int] | None:
    """The 1-based lines of the JSON object under key `name`, or None when it is not found.

    The line where the quoted name first occurs is included: the structured rules report an
    entry there.
    """
    for quoted in dict.fromkeys((json.dumps(name, ensure_ascii=False), json.dumps(name))):
        key = re.search(re.escape(quoted) + r"\s*:\s*\{", text)
        if key is None:
            continue
        end = _object_end(text, key.end() - 1)
        lines = set(range(text.count("\n", 0, key.start()) + 1, text.count("\n", 0, end) + 2))
        lines.add(text.count("\n", 0, text.find(quoted)) + 1)
        return lines
    return None


def _object_end(text: str, start: int) -> int:
    """The index of the brace closing the object opened at `start` (the end when unbalanced)."""
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index
    return len(text) - 1
