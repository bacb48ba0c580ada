"""What the catalog raises when an operation cannot be done as asked."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Row


class CatalogError(Exception):
    """A catalog operation that cannot be done as asked."""


class UnknownSourceError(CatalogError, LookupError):
    """The source has no row: `upsert_sources` it first."""


class SourceRemovedError(UnknownSourceError):
    """The source was removed from the sources file; it is not written until re-added."""


class StaleHeadError(CatalogError):
    """`record_current` was given a head that is not the indexed commit."""


class ScanSupersededError(CatalogError):
    """The source's scan version moved since the writer read it: a newer scan (or configuration)
    was written meanwhile, and this older result must not replace it."""

    def __init__(self, source_key: str, expected: int, row: Row[*tuple[Any, ...]]) -> None:
        commit = row.last_indexed_commit_sha
        super().__init__(
            f"source {source_key!r}: a newer scan was written since this run read the catalog "
            f"(scan version {row.scan_version}, was {expected}; indexed commit "
            f"{commit[:12] if commit else 'none'}); the newer rows stay"
        )
        self.source_key = source_key
        self.indexed_commit: str | None = commit
