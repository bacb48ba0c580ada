"""The catalog as a file other systems read: a versioned JSON Lines (gzip) snapshot of every live
row, written atomically into a folder with a `latest.json` that names the newest snapshot.

A snapshot is `catalog-v{EXPORT_SCHEMA_VERSION}-{UTC time}.jsonl.gz`: one JSON object per live
catalog row, ordered by key `(source_key, artifact_type, path)`, with every column of
`catalog_entries` but the internal ones (`id`, search texts); README "Catalog export" lists
them. The schema version changes when a field is removed or changes meaning; added fields keep it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.catalog.tables import catalog_entries, sources
from skillmeat_pipeline.lib.core.models import ArtifactStatus

EXPORT_SCHEMA_VERSION = 1
EXPORT_DIR_ENV = "SKILLMEAT_EXPORT_DIR"
DEFAULT_EXPORT_DIR = "exports"  # relative to the working directory
LATEST = "latest.json"
DEFAULT_KEEP = 10  # snapshots kept in the folder; older ones are deleted
_INTERNAL_COLUMNS = frozenset(
    {"id", "search_text", "deep_search_text", "deep_index_files", "search_document"}
)
_READ_BATCH = 2000


@dataclass(frozen=True, slots=True)
class ExportResult:
    """One snapshot written: where, how many rows, its size and SHA-256."""

    path: Path
    schema_version: int
    rows: int
    bytes: int
    sha256: str
    exported_at: datetime


def export_columns() -> list[str]:
    """The fields of an exported row, in order: every catalog column but the internal ones."""
    return [c.name for c in catalog_entries.columns if c.name not in _INTERNAL_COLUMNS]


def export_dir_from_env() -> Path:
    return Path(os.environ.get(EXPORT_DIR_ENV) or DEFAULT_EXPORT_DIR)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def live_rows(catalog: Catalog) -> Iterator[dict[str, Any]]:
    """Every live row as exported, by key, streamed (the catalog may not fit in memory twice)."""
    columns = export_columns()
    query = (
        sa.select(*catalog_entries.c[tuple(columns)])
        .select_from(catalog_entries.join(sources, sources.c.key == catalog_entries.c.source_key))
        .where(
            catalog_entries.c.status != ArtifactStatus.REMOVED,
            sources.c.removed_at.is_(None),
        )
        .order_by(
            catalog_entries.c.source_key, catalog_entries.c.artifact_type, catalog_entries.c.path
        )
    )
    with catalog.engine.connect() as conn:
        for row in conn.execute(query.execution_options(yield_per=_READ_BATCH)):
            yield {name: _json_value(value) for name, value in zip(columns, row, strict=True)}


def export_line(row: dict[str, Any]) -> str:
    """One exported row as a JSON Lines line (keys sorted, so equal rows give equal bytes)."""
    return json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"


def write_export(
    catalog: Catalog, directory: Path, *, keep: int = DEFAULT_KEEP, now: datetime | None = None
) -> ExportResult:
    """Write a snapshot of the live catalog into `directory`, point `latest.json` at it and keep
    the newest `keep` snapshots. A reader never sees a half-written file (rename into place)."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    directory.mkdir(parents=True, exist_ok=True)
    moment = now or datetime.now(UTC)
    name = f"catalog-v{EXPORT_SCHEMA_VERSION}-{moment.strftime('%Y%m%dT%H%M%S%fZ')}.jsonl.gz"
    target = directory / name
    digest = hashlib.sha256()
    rows = 0
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".export-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as raw:
            hashing = _HashingWriter(raw, digest)
            # mtime 0: the same rows give the same bytes (and SHA-256)
            with gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0, filename="") as compressed:
                for row in live_rows(catalog):
                    compressed.write(export_line(row).encode())
                    rows += 1
            size = hashing.size
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    result = ExportResult(
        path=target,
        schema_version=EXPORT_SCHEMA_VERSION,
        rows=rows,
        bytes=size,
        sha256=digest.hexdigest(),
        exported_at=moment,
    )
    _write_latest(directory, result)
    _prune(directory, keep)
    return result


def read_export(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a snapshot, in order."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def latest_export(directory: Path) -> dict[str, Any] | None:
    """`latest.json` of the folder: the newest snapshot's file name, rows, bytes and SHA-256."""
    path = directory / LATEST
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


class _HashingWriter:
    """A binary file wrapper that hashes and counts what is written through it."""

    def __init__(self, raw: Any, digest: Any) -> None:
        self._raw = raw
        self._digest = digest
        self.size = 0

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        self.size += len(data)
        written: int = self._raw.write(data)
        return written

    def flush(self) -> None:
        self._raw.flush()


def _write_latest(directory: Path, result: ExportResult) -> None:
    record = asdict(result) | {
        "path": result.path.name,
        "exported_at": result.exported_at.isoformat(),
    }
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".latest-", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(record, out, indent=2)
    os.replace(temporary, directory / LATEST)


def _prune(directory: Path, keep: int) -> None:
    snapshots = sorted(directory.glob("catalog-v*-*.jsonl.gz"))
    for old in snapshots[:-keep]:
        old.unlink(missing_ok=True)
