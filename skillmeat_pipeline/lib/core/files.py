"""Which files of a tree belong to an artifact, and reading them once per scan.

One answer for deep indexing (`core.extraction`) and the trust rules (`lib/trust`), so one read of
a blob can serve both: a file artifact (agent, command, hook, MCP server) owns its manifest file; a
folder artifact (skill, plugin) owns its manifest and every blob below its folder, except ignored
segments (`node_modules`, `dist`, … as detection skips them) and known binary types. The folder is
where a symlinked folder leads (`real_path`) or where a marketplace entry points (`plugin_root`;
such a plugin's path is `<marketplace.json>#<name>` and its manifest is that marketplace file).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence
from itertools import islice
from typing import Any, Protocol

from skillmeat_pipeline.lib.core.models import ArtifactType, TreeEntry, TreeSnapshot
from skillmeat_pipeline.lib.core.tree_view import DEFAULT_IGNORED_SEGMENTS

FOLDER_KINDS = frozenset({ArtifactType.SKILL, ArtifactType.PLUGIN})
# Reading these only to find they are not text would cost a request each on the API path.
BINARY_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".webp",
    ".ico",
    ".bmp",
    ".pdf",
    ".zip",
    ".gz",
    ".tgz",
    ".bz2",
    ".xz",
    ".7z",
    ".jar",
    ".woff",
    ".woff2",
    ".ttf",
    ".otf",
    ".eot",
    ".mp3",
    ".mp4",
    ".mov",
    ".wav",
    ".wasm",
    ".so",
    ".dylib",
    ".dll",
    ".exe",
    ".pyc",
    ".class",
    ".docx",
    ".xlsx",
    ".pptx",
)


class ArtifactLike(Protocol):
    """What a `DetectedArtifact` and a `CatalogEntry` have in common."""

    @property
    def artifact_type(self) -> ArtifactType: ...
    @property
    def path(self) -> str: ...
    @property
    def manifest_path(self) -> str | None: ...
    @property
    def metadata(self) -> dict[str, Any]: ...


def artifact_folder(artifact: ArtifactLike) -> str | None:
    """The folder a skill or plugin is (`.` for the repository root); None for a file artifact."""
    if artifact.artifact_type not in FOLDER_KINDS:
        return None
    metadata = artifact.metadata
    return str(metadata.get("real_path") or metadata.get("plugin_root") or artifact.path)


def _prefix(folder: str) -> str:
    return "" if folder == "." else folder + "/"


def _kept(path: str, relative: str) -> bool:
    return not path.lower().endswith(BINARY_SUFFIXES) and not any(
        segment in DEFAULT_IGNORED_SEGMENTS for segment in relative.split("/")
    )


def owns_file(artifact: ArtifactLike, path: str) -> bool:
    """Is `path` one of `artifact`'s files (as `artifact_file_paths` lists them)?"""
    if path == artifact.manifest_path:
        return True
    folder = artifact_folder(artifact)
    if folder is None:
        return False
    prefix = _prefix(folder)
    return path.startswith(prefix) and _kept(path, path[len(prefix) :])


def artifact_file_paths(artifact: ArtifactLike, blob_paths: Sequence[str]) -> list[str]:
    """The manifest first (whether or not it is a blob), then the other blobs of the folder.

    The manifest leads so that it is the last thing the deep-text cap cuts.

    `blob_paths` must be sorted: the paths below one folder are contiguous in sorted order.
    """
    manifest = artifact.manifest_path
    selected = [manifest] if manifest else []
    folder = artifact_folder(artifact)
    if folder is None:
        return selected
    prefix = _prefix(folder)
    for path in islice(blob_paths, bisect.bisect_left(blob_paths, prefix), None):
        if not path.startswith(prefix):
            break
        if path != manifest and _kept(path, path[len(prefix) :]):
            selected.append(path)
    return selected


class BlobCache:
    """A `TreeSnapshot` whose blobs are read once per scan, whoever asks first.

    Detection, extraction (deep indexing) and the trust rules read many of the same files; on the
    API path every read is a request. Blobs up to `max_blob_bytes` are kept, least recently used
    first out beyond `max_bytes` in all, so a huge repository costs re-reads, never memory.
    """

    def __init__(
        self,
        inner: TreeSnapshot,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_blob_bytes: int = 256 * 1024,
    ) -> None:
        self.inner = inner
        self.commit_sha = inner.commit_sha
        self.tree_sha = inner.tree_sha
        self.entries = inner.entries
        self._max_bytes = max_bytes
        self._max_blob_bytes = max_blob_bytes
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self.reads = 0  # reads that reached the inner snapshot
        self.hits = 0

    def read_blob(self, entry: TreeEntry) -> bytes:
        data = self._blobs.get(entry.sha)
        if data is not None:
            self._blobs.move_to_end(entry.sha)
            self.hits += 1
            return data
        data = self.inner.read_blob(entry)
        self.reads += 1
        if len(data) <= self._max_blob_bytes:
            self._blobs[entry.sha] = data
            self._bytes += len(data)
            while self._bytes > self._max_bytes:
                _, evicted = self._blobs.popitem(last=False)
                self._bytes -= len(evicted)
        return data

    def size_of(self, entry: TreeEntry) -> int | None:
        """The blob's size when the inner snapshot knows it without reading (the API tree)."""
        size_of = getattr(self.inner, "size_of", None)
        size = size_of(entry) if callable(size_of) else None
        return size if isinstance(size, int) else None
