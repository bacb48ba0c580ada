"""Data shapes shared by detection, extraction, fetching and storage.

Nothing here knows about Dagster, git or HTTP: a tree listing is the same whether it was read from a
local object database or from a GitHub trees API response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field, model_validator

from skillmeat_pipeline.lib.core.findings import Finding, Severity, risk_of

# git file modes, as both libgit2 and the GitHub trees API report them
MODE_TREE = 0o040000
MODE_BLOB = 0o100644
MODE_EXECUTABLE = 0o100755
MODE_SYMLINK = 0o120000
MODE_GITLINK = 0o160000


class ArtifactType(StrEnum):
    SKILL = "skill"
    AGENT = "agent"
    COMMAND = "command"
    HOOK = "hook"
    MCP = "mcp"
    PLUGIN = "plugin"


class ArtifactStatus(StrEnum):
    NEW = "new"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REMOVED = "removed"


class SourceStatus(StrEnum):
    """Where a source stands after its last run: one vocabulary for the catalog, metadata, logs
    and the CLI."""

    SCANNED = "scanned"  # the last run read the tree and wrote its rows
    CURRENT = "current"  # the head had not moved; the stored index is still the latest
    FAILED = "failed"  # the last run failed; the entries are those of the last good scan
    REMOVED = "removed"  # no longer in the sources file; its entries are kept, marked removed
    # a run's end only, never stored: its scan was not written because a newer one was written
    # after the run read the catalog (the newer rows and status stay)
    SUPERSEDED = "superseded"
    SKIPPED = "skipped"  # a marketplace entry that is listed but not fetched (npm, unknown form)


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One path of a tree at a commit: POSIX path relative to the root, git mode, object SHA."""

    path: str
    mode: int
    sha: str

    @property
    def is_tree(self) -> bool:
        return self.mode == MODE_TREE

    @property
    def is_blob(self) -> bool:
        return self.mode in (MODE_BLOB, MODE_EXECUTABLE)

    @property
    def is_symlink(self) -> bool:
        return self.mode == MODE_SYMLINK

    @property
    def is_gitlink(self) -> bool:
        return self.mode == MODE_GITLINK


class TreeSnapshot(Protocol):
    """A source tree at one commit, wherever it was read from (a bare clone or the GitHub API)."""

    commit_sha: str
    tree_sha: str
    entries: list[TreeEntry]

    def read_blob(self, entry: TreeEntry) -> bytes:
        """The bytes of a blob or symlink entry (a symlink's bytes are its target path)."""
        ...


@dataclass(slots=True)
class DetectedArtifact:
    """What detection (SPEC §3) found, before its manifest is parsed for title and description."""

    artifact_type: ArtifactType
    path: str
    name: str
    content_sha: str
    manifest_path: str | None
    confidence: int
    signals: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    plugin_path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Detection:
    """All artifacts of one tree, plus source-level marketplace metadata and tree-level problems."""

    artifacts: list[DetectedArtifact]
    marketplace: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)  # in-scope symlink path -> its target


ArtifactKey = tuple[ArtifactType, str]  # an artifact within its source: one folder can be two


class CatalogEntry(BaseModel):
    """One row of the catalog (SPEC §5.2); key `(source_key, artifact_type, path)`."""

    source_key: str
    path: str
    artifact_type: ArtifactType
    name: str
    title: str | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    model: str | None = None
    plugin_path: str | None = None
    confidence: int = Field(ge=0, le=100)
    signals: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    # Security findings (SPEC §5.5), set by the scan layer; None: not computed yet (a row stored
    # before findings existed, or an entry straight out of extraction).
    findings: list[Finding] | None = None
    risk: Severity | None = None  # the highest severity among `findings`
    content_sha: str
    manifest_path: str | None = None
    upstream_url: str | None = None
    search_text: str
    deep_search_text: str | None = None
    deep_index_files: list[str] = Field(default_factory=list)
    status: ArtifactStatus = ArtifactStatus.NEW
    first_seen_commit: str | None = None
    indexed_commit: str | None = None
    indexed_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    # SPEC §5.5: 0-100 from the rubric of lib/quality (None: not scored), and its parts
    quality: int | None = Field(default=None, ge=0, le=100)
    quality_components: dict[str, int] | None = None

    @model_validator(mode="after")
    def _risk_follows_findings(self) -> CatalogEntry:
        self.risk = risk_of(self.findings or ())
        return self

    @property
    def key(self) -> ArtifactKey:
        """The artifact within its source: a skill folder can also be a plugin."""
        return (self.artifact_type, self.path)

    def with_findings(self, findings: list[Finding]) -> CatalogEntry:
        """A copy carrying `findings` and the risk they make."""
        return self.model_copy(update={"findings": findings, "risk": risk_of(findings)})
