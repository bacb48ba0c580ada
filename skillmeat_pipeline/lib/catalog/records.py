"""What the catalog hands out: source rows, findings, push events, and what a scan write changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from skillmeat_pipeline.lib.core.findings import Finding
from skillmeat_pipeline.lib.core.models import ArtifactType, SourceStatus
from skillmeat_pipeline.lib.core.strategy import CloneTarget, Strategy


class SourceOrigin(StrEnum):
    FILE = "file"  # declared in the sources file
    MARKETPLACE = "marketplace"  # referenced by an entry of an indexed marketplace (SPEC §2.1)


class SourceRecord(BaseModel):
    """A source row as stored (SPEC §5.3), with its clone target parsed back."""

    key: str
    url: str
    github: str | None
    ref: str | None
    root_hint: str | None
    exclude: list[str]
    deep_indexing: bool
    clone_target: CloneTarget | None
    artifacts_root: str | None
    artifact_count: int | None
    indexing_strategy: Strategy | None
    last_indexed_commit_sha: str | None
    last_indexed_tree_sha: str | None
    last_indexed_at: datetime | None
    last_status: SourceStatus | None
    last_error: str | None
    api_calls: int | None
    marketplace: dict[str, Any] | None
    removed_at: datetime | None
    scan_version: int
    problems: list[str] | None
    origin: SourceOrigin = SourceOrigin.FILE
    marketplace_key: str | None = None
    plugin: str | None = None
    pinned_commit: str | None = None


class MarketplaceSourceResponse(BaseModel):
    """A source as the API shows it (SPEC §5.3); index facts come from the stored clone target."""

    key: str
    url: str
    github: str | None
    ref: str | None
    artifacts_root: str | None
    artifact_count: int | None
    indexing_strategy: Strategy | None
    last_indexed_tree_sha: str | None
    last_indexed_at: datetime | None
    last_status: SourceStatus | None
    last_error: str | None
    api_calls: int | None
    origin: SourceOrigin = SourceOrigin.FILE
    marketplace: str | None = None  # the marketplace source key of a plugin source
    plugin: str | None = None  # its entry name
    pinned_commit: str | None = None

    @classmethod
    def from_record(cls, record: SourceRecord) -> MarketplaceSourceResponse:
        target = record.clone_target
        return cls(
            key=record.key,
            url=record.url,
            github=record.github,
            ref=record.ref,
            origin=record.origin,
            marketplace=record.marketplace_key,
            plugin=record.plugin,
            pinned_commit=record.pinned_commit,
            artifacts_root=target.artifacts_root if target else None,
            artifact_count=target.artifact_count if target else None,
            indexing_strategy=target.strategy if target else None,
            last_indexed_tree_sha=target.tree_sha if target else None,
            last_indexed_at=record.last_indexed_at,
            last_status=record.last_status,
            last_error=record.last_error,
            api_calls=record.api_calls,
        )


@dataclass(frozen=True, slots=True)
class SourceFinding:
    """One finding of one live catalog entry, as `Catalog.findings` lists them."""

    source_key: str
    artifact_type: ArtifactType
    path: str
    name: str
    finding: Finding

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_key": self.source_key,
            "artifact_type": self.artifact_type.value,
            "path": self.path,
            "name": self.name,
            **self.finding.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where a source lives: what a push notification is matched against."""

    key: str
    url: str
    github: str | None
    ref: str | None


class PushEvent(BaseModel):
    """A GitHub push delivery the webhook receiver accepted; pending until `handled_at` is set."""

    id: int
    delivery_id: str
    repository: str
    ref: str | None
    after_sha: str | None
    source_keys: list[str]
    received_at: datetime
    handled_at: datetime | None


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one `write_scan` changed: entry rows written, and how many got each status."""

    rows_affected: int
    new: int
    updated: int
    unchanged: int
    removed: int
