"""Strategy selection and the clone target (SPEC §4), as pure functions.

libgit2 cannot skip blobs, so "sparse" decides what is read and parsed from a bare depth-1 clone,
never what is transferred.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

API_MAX_ARTIFACTS = 3  # fewer than this and reading manifests over REST/raw beats a clone
SPARSE_MANIFEST_MAX_ARTIFACTS = 20
DEFAULT_MAX_CLONE_MB = 500


class Strategy(StrEnum):
    API = "api"
    SPARSE_MANIFEST = "sparse_manifest"
    SPARSE_DIRECTORY = "sparse_directory"


@dataclass(frozen=True, slots=True)
class StrategyInputs:
    """Everything the choice depends on; `artifact_paths is None` means the count is unknown."""

    source: str
    artifact_paths: Sequence[str] | None
    manifest_paths: Sequence[str] = ()
    is_github: bool = False
    deep_indexing: bool = False
    repo_size_mb: float | None = None
    max_clone_mb: float = DEFAULT_MAX_CLONE_MB
    clone_unusable_reason: str | None = None  # libgit2 missing, too little disk, clone failed
    api_calls_needed: int = 3
    api_call_budget: int = 10


class StrategySelection(BaseModel):
    """The structured record logged for every selection (SPEC §4)."""

    model_config = ConfigDict(frozen=True)

    source: str
    artifact_count: int | None
    artifacts_root: str | None
    selected_strategy: Strategy
    patterns: list[str]
    patterns_count: int
    reason: str
    fallback: bool = False

    def log_record(self) -> dict[str, Any]:
        """The JSON-compatible record of SPEC §4 (patterns themselves are on the clone target)."""
        return self.model_dump(mode="json", exclude={"patterns", "fallback"})


class CloneTarget(BaseModel):
    """What the last index of a source read, stored per source; round-trips through JSON exactly."""

    strategy: Strategy
    patterns: list[str]
    artifacts_root: str | None
    artifact_paths: list[str]
    commit_sha: str | None
    tree_sha: str | None
    computed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # paths in the tree detection read: tells a shrunk tree from a detection that lost artifacts
    tree_entry_count: int | None = None

    @property
    def artifact_count(self) -> int:
        return len(self.artifact_paths)


FILE_ARTIFACT_SUFFIXES = (".md", ".json")  # agents, commands, hooks and MCP configs are files


def artifact_location(path: str) -> str:
    """The tree path of an artifact path (an MCP server `file#name` lives in `file`)."""
    return path.split("#", 1)[0]


def _is_file_location(location: str) -> bool:
    return location.lower().endswith(FILE_ARTIFACT_SUFFIXES)


def common_root(artifact_paths: Sequence[str]) -> str | None:
    """The deepest directory holding every artifact, or None when that is the repository root.

    A single directory artifact (a skill) is its own root; a file's root is its folder.
    """
    if not artifact_paths:
        return None
    parts: list[list[str]] = []
    for path in artifact_paths:
        location = artifact_location(path)
        if location in ("", "."):
            return None
        segments = location.split("/")
        # A directory artifact (skill, plugin) is its own root; a file's root is its folder.
        parts.append(segments[:-1] if _is_file_location(location) else segments)
    prefix: list[str] = []
    for column in zip(*parts, strict=False):
        if len(set(column)) != 1:
            break
        prefix.append(column[0])
    return posixpath.join(*prefix) if prefix else None


def patterns_for(
    strategy: Strategy, artifact_paths: Sequence[str], manifest_paths: Sequence[str]
) -> list[str]:
    """What a strategy reads: every file under the artifact roots, or only the manifests."""
    if strategy is Strategy.SPARSE_DIRECTORY and artifact_paths:
        return _directory_patterns(artifact_paths, common_root(artifact_paths))
    return sorted(set(manifest_paths))


def _directory_patterns(artifact_paths: Sequence[str], root: str | None) -> list[str]:
    if root is not None:
        return [f"{root}/**"]
    locations = {artifact_location(p) for p in artifact_paths}
    if locations & {"", "."}:
        return ["**"]  # the repository root is itself an artifact
    patterns = {loc if _is_file_location(loc) else f"{loc}/**" for loc in locations}
    return sorted(patterns)


def select_strategy(inputs: StrategyInputs) -> StrategySelection:
    """Choose how to index one source, with the reason a user reads in the run log."""
    paths = list(inputs.artifact_paths) if inputs.artifact_paths is not None else None
    count = len(paths) if paths is not None else None
    root = common_root(paths) if paths else None

    def chosen(strategy: Strategy, reason: str, *, fallback: bool = False) -> StrategySelection:
        patterns = patterns_for(strategy, paths or [], inputs.manifest_paths)
        return StrategySelection(
            source=inputs.source,
            artifact_count=count,
            artifacts_root=root,
            selected_strategy=strategy,
            patterns=patterns,
            patterns_count=len(patterns),
            reason=reason,
            fallback=fallback,
        )

    if inputs.clone_unusable_reason is not None:
        if inputs.is_github:
            return chosen(Strategy.API, inputs.clone_unusable_reason, fallback=True)
        # No API path exists for a non-GitHub source: a clone is the only way in.
        return chosen(
            Strategy.SPARSE_MANIFEST,
            f"{inputs.clone_unusable_reason}; not a GitHub source, so no API fallback",
            fallback=True,
        )
    if count is None:
        return chosen(Strategy.SPARSE_MANIFEST, "first index: artifact count unknown until cloned")
    if inputs.is_github and count < API_MAX_ARTIFACTS and not inputs.deep_indexing:
        return chosen(Strategy.API, f"count {count} < {API_MAX_ARTIFACTS}")
    if (
        inputs.is_github
        and inputs.repo_size_mb is not None
        and inputs.repo_size_mb > inputs.max_clone_mb
        and inputs.api_calls_needed <= inputs.api_call_budget
    ):
        return chosen(
            Strategy.API,
            f"repository size {inputs.repo_size_mb:.0f} MB > "
            f"{inputs.max_clone_mb:.0f} MB clone limit",
        )
    if inputs.deep_indexing:
        return chosen(Strategy.SPARSE_DIRECTORY, "deep_indexing is on")
    if count > SPARSE_MANIFEST_MAX_ARTIFACTS and root is not None:
        return chosen(
            Strategy.SPARSE_DIRECTORY,
            f"count {count} > {SPARSE_MANIFEST_MAX_ARTIFACTS} with common root {root}",
        )
    if count > SPARSE_MANIFEST_MAX_ARTIFACTS:
        return chosen(
            Strategy.SPARSE_MANIFEST,
            f"count {count} > {SPARSE_MANIFEST_MAX_ARTIFACTS} without a common root",
        )
    if not inputs.is_github and count < API_MAX_ARTIFACTS:
        return chosen(
            Strategy.SPARSE_MANIFEST, f"count {count} < {API_MAX_ARTIFACTS} but not a GitHub source"
        )
    return chosen(
        Strategy.SPARSE_MANIFEST,
        f"count {count} in {API_MAX_ARTIFACTS}..{SPARSE_MANIFEST_MAX_ARTIFACTS}",
    )


def build_clone_target(
    strategy: Strategy,
    artifact_paths: Sequence[str],
    manifest_paths: Sequence[str],
    *,
    commit_sha: str | None,
    tree_sha: str | None,
    tree_entry_count: int | None = None,
    computed_at: datetime | None = None,
) -> CloneTarget:
    """The clone target stored after a scan: the strategy used and what it found and read."""
    paths = sorted(artifact_paths)
    return CloneTarget(
        strategy=strategy,
        patterns=patterns_for(strategy, paths, manifest_paths),
        artifacts_root=common_root(paths),
        artifact_paths=paths,
        commit_sha=commit_sha,
        tree_sha=tree_sha,
        tree_entry_count=tree_entry_count,
        computed_at=computed_at or datetime.now(UTC),
    )
