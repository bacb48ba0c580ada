"""What each step of a scan hands on: a plan still on its way, or an outcome. All immutable.

`SourcePlan` is what is known of a source before its tree is read; each step returns a new one or
an outcome: `Current` (the head is the indexed commit), `Scanned` (rows to write), `FellBack` (the
git side failed for a GitHub source: the API path takes over) or `Failed` (every way in failed; the
last good rows stay). The write ends a `Scanned` or `Current` as `Superseded` when a newer scan was
written after the plan read the catalog.

Every outcome carries `base_version`: the source's `scan_version` as the plan read it, which the
catalog write checks (None: not read, no check).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from skillmeat_pipeline.lib.core.models import CatalogEntry, SourceStatus
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.core.strategy import CloneTarget, Strategy, StrategySelection
from skillmeat_pipeline.lib.fetch.git.clone import RemoteHead
from skillmeat_pipeline.lib.scan.cost import ScanCost


@dataclass(frozen=True, slots=True)
class SourcePlan:
    """A source on its way through the steps."""

    source: SourceConfig
    indexed_commit: str | None  # None: never indexed, or its configuration changed since
    previous_target: CloneTarget | None  # what the last good index read
    head: RemoteHead | None = None
    clone_unusable_reason: str | None = None  # the git side already failed (GitHub sources)
    selection: StrategySelection | None = None
    fallback_reason: str | None = None  # why the API path serves a source that would be cloned
    cost: ScanCost = field(default_factory=ScanCost)
    base_version: int | None = None  # the catalog's scan_version of the source at the start

    @property
    def key(self) -> str:
        return self.source.key

    @property
    def via_api(self) -> bool:
        """Routed to the GitHub API path (chosen, or because the clone cannot be used)."""
        return self.selection is not None and self.selection.selected_strategy is Strategy.API


@dataclass(frozen=True, slots=True)
class Current:
    """The head is the indexed commit: nothing fetched, nothing written but the check time."""

    source_key: str
    commit_sha: str
    target: CloneTarget  # the stored clone target of the indexed commit
    cost: ScanCost = field(default_factory=ScanCost)
    base_version: int | None = None

    status: ClassVar[SourceStatus] = SourceStatus.CURRENT
    fallback_reason: ClassVar[None] = None
    error: ClassVar[None] = None

    @property
    def strategy(self) -> Strategy:
        return self.target.strategy

    @property
    def previous_target(self) -> CloneTarget:
        return self.target

    @property
    def artifact_count(self) -> int:
        return self.target.artifact_count


@dataclass(frozen=True, slots=True)
class Scanned:
    """A fresh read of the tree: the rows to write. `target` holds commit, tree and strategy."""

    source_key: str
    target: CloneTarget
    entries: tuple[CatalogEntry, ...]
    marketplace: dict[str, Any] | None = None
    previous_target: CloneTarget | None = None
    fallback_reason: str | None = None
    cost: ScanCost = field(default_factory=ScanCost)
    base_version: int | None = None
    problems: tuple[str, ...] = ()  # what is wrong with the tree outside any one artifact

    status: ClassVar[SourceStatus] = SourceStatus.SCANNED
    error: ClassVar[None] = None

    @property
    def strategy(self) -> Strategy:
        return self.target.strategy

    @property
    def commit_sha(self) -> str | None:
        return self.target.commit_sha

    @property
    def artifact_count(self) -> int:
        return len(self.entries)


@dataclass(frozen=True, slots=True)
class FellBack:
    """The git side failed for a GitHub source; `plan` goes on to the API path."""

    plan: SourcePlan
    reason: str

    @property
    def key(self) -> str:
        return self.plan.key


@dataclass(frozen=True, slots=True)
class Failed:
    """Every way in failed, or the rows could not be written; the last good rows stay."""

    source_key: str
    reason: str
    strategy: Strategy | None = None
    previous_target: CloneTarget | None = None
    fallback_reason: str | None = None
    cost: ScanCost = field(default_factory=ScanCost)
    base_version: int | None = None

    status: ClassVar[SourceStatus] = SourceStatus.FAILED
    commit_sha: ClassVar[None] = None

    @property
    def error(self) -> str:
        return self.reason

    @property
    def artifact_count(self) -> int:
        return self.previous_target.artifact_count if self.previous_target else 0


@dataclass(frozen=True, slots=True)
class Superseded:
    """A `Scanned` or `Current` that was not written: a newer scan of the source was written after
    this run read the catalog. The newer rows stay; the partition does not fail."""

    source_key: str
    reason: str
    target: CloneTarget  # what this run read (its commit, tree and strategy)
    previous_target: CloneTarget | None = None
    fallback_reason: str | None = None
    cost: ScanCost = field(default_factory=ScanCost)

    status: ClassVar[SourceStatus] = SourceStatus.SUPERSEDED
    error: ClassVar[None] = None
    base_version: ClassVar[None] = None  # nothing more is written for it

    @property
    def strategy(self) -> Strategy:
        return self.target.strategy

    @property
    def commit_sha(self) -> str | None:
        return self.target.commit_sha

    @property
    def artifact_count(self) -> int:
        return self.target.artifact_count


SourceOutcome = Current | Scanned | Failed | Superseded  # where a source's run ends


def failed(plan: SourcePlan, reason: str) -> Failed:
    """A plan's end when nothing more can be tried."""
    return Failed(
        source_key=plan.key,
        reason=reason,
        strategy=plan.selection.selected_strategy if plan.selection else None,
        previous_target=plan.previous_target,
        fallback_reason=plan.fallback_reason,
        cost=plan.cost,
        base_version=plan.base_version,
    )


def count_collapsed(previous: CloneTarget | None, current: CloneTarget | None) -> bool:
    """Did the artifact count drop by more than half while the tree detection read did not shrink?

    A shrunk tree explains fewer artifacts; an unchanged one points at a detection regression.
    """
    if previous is None or current is None or previous.artifact_count == 0:
        return False
    tree_shrank = (
        previous.tree_entry_count is not None
        and current.tree_entry_count is not None
        and current.tree_entry_count < previous.tree_entry_count
    )
    return current.artifact_count * 2 < previous.artifact_count and not tree_shrank
