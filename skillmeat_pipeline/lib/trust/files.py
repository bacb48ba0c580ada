"""The files the trust rules read, and which artifact a finding belongs to.

SPEC §5.5: "every text file up to 256 KB below the artifact's root". Which files an artifact owns
is decided once, in `core.files` (the same selection as deep indexing, so one read of a blob can
serve both).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from skillmeat_pipeline.lib.core.files import ArtifactLike, artifact_file_paths, owns_file
from skillmeat_pipeline.lib.core.findings import Finding
from skillmeat_pipeline.lib.core.models import TreeEntry, TreeSnapshot
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


def findings_of(artifact: ArtifactLike, findings: Iterable[Finding]) -> list[Finding]:
    """The findings in `artifact`'s files (all findings of a repository can be computed once)."""
    return [finding for finding in findings if owns_file(artifact, finding.file)]
