"""Which files the trust rules read for an artifact, and which artifacts a finding belongs to.

SPEC §5.5: "every text file up to 256 KB below the artifact's root". A folder artifact (skill,
plugin) owns every blob below its folder (through `real_path` when the folder is a symlink), except
ignored segments (`node_modules`, `dist`, … as detection skips them) and known binary types; a file
artifact (agent, command, hook, MCP server) owns its manifest file. The same selection as
deep indexing (`core.extraction`), so one read of a blob can serve both.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any, Protocol

from skillmeat_pipeline.lib.core.detection import DEFAULT_IGNORED_SEGMENTS
from skillmeat_pipeline.lib.core.models import ArtifactType, TreeEntry, TreeSnapshot
from skillmeat_pipeline.lib.trust.findings import Finding
from skillmeat_pipeline.lib.trust.scan import MAX_FILE_BYTES, is_text

FOLDER_KINDS = frozenset({ArtifactType.SKILL, ArtifactType.PLUGIN})


class ArtifactLike(Protocol):
    """What a `DetectedArtifact` or a `CatalogEntry` has in common."""

    @property
    def artifact_type(self) -> ArtifactType: ...
    @property
    def path(self) -> str: ...
    @property
    def manifest_path(self) -> str | None: ...
    @property
    def metadata(self) -> dict[str, Any]: ...


def artifact_root(artifact: ArtifactLike) -> tuple[str, bool]:
    """The folder (True) or the file (False) whose text files the rules read."""
    if artifact.artifact_type in FOLDER_KINDS:
        return str(artifact.metadata.get("real_path") or artifact.path), True
    return artifact.manifest_path or artifact.path.split("#", 1)[0], False


def artifact_file_paths(artifact: ArtifactLike, blob_paths: Sequence[str]) -> list[str]:
    """The blob paths of `artifact`; `blob_paths` must be sorted."""
    root, folder = artifact_root(artifact)
    if not folder:
        index = bisect.bisect_left(blob_paths, root)
        found = index < len(blob_paths) and blob_paths[index] == root
        return [root] if found else []
    prefix = "" if root == "." else root + "/"
    selected: list[str] = []
    for path in islice(blob_paths, bisect.bisect_left(blob_paths, prefix), None):
        if not path.startswith(prefix):
            break
        relative = path[len(prefix) :]
        if any(segment in DEFAULT_IGNORED_SEGMENTS for segment in relative.split("/")):
            continue
        selected.append(path)
    return selected


def read_artifact_files(
    snapshot: TreeSnapshot, artifacts: Iterable[ArtifactLike]
) -> dict[str, bytes]:
    """Every text file (≤ 256 KB) of `artifacts` in `snapshot`, each blob read once."""
    entries: dict[str, TreeEntry] = {e.path: e for e in snapshot.entries if e.is_blob}
    blob_paths = sorted(entries)
    wanted: set[str] = set()
    for artifact in artifacts:
        wanted.update(artifact_file_paths(artifact, blob_paths))
    files: dict[str, bytes] = {}
    for path in sorted(wanted):
        data = snapshot.read_blob(entries[path])
        if len(data) <= MAX_FILE_BYTES and is_text(path, data):
            files[path] = data
    return files


def findings_of(artifact: ArtifactLike, findings: Iterable[Finding]) -> list[Finding]:
    """The findings in `artifact`'s files (all findings of a repository can be computed once)."""
    root, folder = artifact_root(artifact)
    if not folder:
        return [f for f in findings if f.file == root]
    prefix = "" if root == "." else root + "/"
    return [
        f
        for f in findings
        if f.file.startswith(prefix)
        and not any(s in DEFAULT_IGNORED_SEGMENTS for s in f.file[len(prefix) :].split("/"))
    ]


def by_artifact(
    artifacts: Iterable[ArtifactLike], findings: Sequence[Finding]
) -> Mapping[tuple[str, str], list[Finding]]:
    """`(artifact_type, path)` -> that artifact's findings."""
    return {(a.artifact_type.value, a.path): findings_of(a, findings) for a in artifacts}
