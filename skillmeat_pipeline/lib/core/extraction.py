"""Catalog entries (SPEC §5.2) from detected artifacts: each markdown manifest is read once.

JSON artifacts (plugins, hooks, MCP servers) need no read here: detection already parsed their file
and left what matters in the artifact's metadata.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from skillmeat_pipeline.lib.core.confidence import score_confidence
from skillmeat_pipeline.lib.core.files import artifact_file_paths, artifact_folder
from skillmeat_pipeline.lib.core.manifests import (
    collect_deep_text,
    normalize_list,
    parse_markdown_manifest,
)
from skillmeat_pipeline.lib.core.models import (
    ArtifactStatus,
    ArtifactType,
    CatalogEntry,
    DetectedArtifact,
    Detection,
    TreeEntry,
    TreeSnapshot,
)

MARKDOWN_KINDS = frozenset({ArtifactType.SKILL, ArtifactType.AGENT, ArtifactType.COMMAND})
# Commands are named by their path (`git:commit`); a frontmatter name would lose the namespace.
FRONTMATTER_NAMED_KINDS = frozenset({ArtifactType.SKILL, ArtifactType.AGENT})
METADATA_FRONTMATTER_KEYS = ("argument-hint", "version", "license")


def extract_catalog_entries(
    snapshot: TreeSnapshot,
    detection: Detection,
    *,
    source_key: str,
    upstream_url: str | None = None,
    deep_indexing: bool = False,
    previous: Mapping[tuple[ArtifactType, str], CatalogEntry] | None = None,
    indexed_at: datetime | None = None,
) -> list[CatalogEntry]:
    """One catalog entry per detected artifact of `snapshot`, in detection order.

    `upstream_url` is the web address of the tree at the indexed commit (for GitHub,
    `https://github.com/owner/repo/tree/<commit>`); each artifact's path is appended to it.
    `previous` maps (type, path) to the entry stored by the last index of the source: an entry
    whose content SHA is unchanged is reused as it is (status `unchanged`) without reading anything.
    """
    extractor = _Extractor(snapshot, source_key, upstream_url, deep_indexing)
    moment = indexed_at or datetime.now(UTC)
    entries: list[CatalogEntry] = []
    for artifact in detection.artifacts:
        prior = previous.get((artifact.artifact_type, artifact.path)) if previous else None
        if prior is not None and _reusable(prior, artifact, deep_indexing):
            entries.append(
                prior.model_copy(
                    update={
                        "status": ArtifactStatus.UNCHANGED,
                        "plugin_path": artifact.plugin_path,
                        "upstream_url": extractor.upstream_url_of(artifact),
                        "indexed_commit": snapshot.commit_sha,
                        "indexed_at": moment,
                    }
                )
            )
            continue
        entry = extractor.extract(artifact)
        # A removed row that reappears is new again; it keeps the commit it was first seen at.
        alive = prior is not None and prior.status is not ArtifactStatus.REMOVED
        entry.status = ArtifactStatus.UPDATED if alive else ArtifactStatus.NEW
        entry.first_seen_commit = (
            prior.first_seen_commit if prior and prior.first_seen_commit else snapshot.commit_sha
        )
        entry.indexed_commit = snapshot.commit_sha
        entry.indexed_at = moment
        entries.append(entry)
    return entries


def _reusable(prior: CatalogEntry, artifact: DetectedArtifact, deep_indexing: bool) -> bool:
    return (
        prior.status is not ArtifactStatus.REMOVED
        and prior.artifact_type == artifact.artifact_type
        and prior.content_sha == artifact.content_sha
        # switching deep indexing on or off changes the row although the content did not
        and (prior.deep_search_text is not None) == deep_indexing
    )


class _Extractor:
    def __init__(
        self,
        snapshot: TreeSnapshot,
        source_key: str,
        upstream_url: str | None,
        deep_indexing: bool,
    ) -> None:
        self.snapshot = snapshot
        self.source_key = source_key
        self.upstream_base = upstream_url.rstrip("/") if upstream_url else None
        self.deep_indexing = deep_indexing
        self._by_path: dict[str, TreeEntry] | None = None
        self._blob_paths: list[str] | None = None

    @property
    def by_path(self) -> dict[str, TreeEntry]:
        # Built on first use: a source whose artifacts are all unchanged never needs it.
        if self._by_path is None:
            self._by_path = {entry.path: entry for entry in self.snapshot.entries}
        return self._by_path

    def upstream_url_of(self, artifact: DetectedArtifact) -> str | None:
        if self.upstream_base is None:
            return None
        path = artifact_folder(artifact) or artifact.manifest_path or artifact.path
        return self.upstream_base if path == "." else f"{self.upstream_base}/{quote(path)}"

    def extract(self, artifact: DetectedArtifact) -> CatalogEntry:
        fields: dict[str, Any] = {
            "name": artifact.name,
            "title": None,
            "description": _string(artifact.metadata.get("description")),
            "tags": normalize_list(artifact.metadata.get("keywords")),
            "tools": [],
            "model": None,
        }
        signals = list(artifact.signals)
        problems = list(artifact.problems)
        metadata = dict(artifact.metadata)
        if artifact.artifact_type in MARKDOWN_KINDS and artifact.manifest_path:
            self._read_markdown(artifact, fields, signals, problems, metadata)
        if fields["description"]:
            signals.append("has_description")
        confidence = score_confidence(signals, problems)
        deep_text: str | None = None
        deep_files: list[str] = []
        if self.deep_indexing:
            deep = collect_deep_text(self._artifact_files(artifact, problems))
            deep_text, deep_files = deep.text, deep.files
            problems.extend(deep.problems)
        search_parts = [fields["name"], fields["title"], fields["description"], *fields["tags"]]
        return CatalogEntry(
            source_key=self.source_key,
            path=artifact.path,
            artifact_type=artifact.artifact_type,
            plugin_path=artifact.plugin_path,
            confidence=confidence,
            signals=signals,
            problems=problems,
            content_sha=artifact.content_sha,
            manifest_path=artifact.manifest_path,
            upstream_url=self.upstream_url_of(artifact),
            search_text="\n".join(dict.fromkeys(part for part in search_parts if part)),
            deep_search_text=deep_text,
            deep_index_files=deep_files,
            metadata=metadata,
            **fields,
        )

    def _read_markdown(
        self,
        artifact: DetectedArtifact,
        fields: dict[str, Any],
        signals: list[str],
        problems: list[str],
        metadata: dict[str, Any],
    ) -> None:
        manifest_path = artifact.manifest_path or ""
        data = self._read(manifest_path, problems)
        if data is None:
            return
        manifest = parse_markdown_manifest(data)
        problems.extend(f"{manifest_path}: {problem}" for problem in manifest.problems)
        frontmatter = manifest.frontmatter if isinstance(manifest.frontmatter, dict) else {}
        if manifest.frontmatter_valid:
            signals.append("valid_frontmatter")
        elif frontmatter:
            signals.append("recovered_frontmatter")
        if artifact.artifact_type in FRONTMATTER_NAMED_KINDS:
            fields["name"] = _string(frontmatter.get("name")) or artifact.name
        fields["title"] = _string(manifest.title)
        fields["description"] = _string(manifest.description)
        fields["tags"] = normalize_list(frontmatter.get("tags"))
        tools = [
            *normalize_list(frontmatter.get("tools")),
            *normalize_list(frontmatter.get("allowed-tools")),
        ]
        fields["tools"] = list(dict.fromkeys(tools))
        fields["model"] = _string(frontmatter.get("model"))
        for key in METADATA_FRONTMATTER_KEYS:
            value = _frontmatter_text(frontmatter.get(key))
            if value:
                metadata[key] = value

    def _read(self, path: str, problems: list[str]) -> bytes | None:
        entry = self.by_path.get(path)
        if entry is None:
            problems.append(f"{path}: not in the tree")
            return None
        try:
            return self.snapshot.read_blob(entry)
        except (LookupError, ValueError, OSError) as exc:
            problems.append(f"{path}: could not be read ({exc})")
            return None

    def _artifact_files(
        self, artifact: DetectedArtifact, problems: list[str]
    ) -> Iterator[tuple[str, bytes]]:
        """The artifact's files, read one at a time: the deep text keeps only what fits its cap."""
        if self._blob_paths is None:
            self._blob_paths = sorted(e.path for e in self.snapshot.entries if e.is_blob)
        for path in artifact_file_paths(artifact, self._blob_paths):
            data = self._read(path, problems)
            if data is not None:
                yield path, data


def _string(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _frontmatter_text(value: Any) -> str | None:
    # Strict YAML reads `argument-hint: [file]` as a list; show it the way it was written.
    if isinstance(value, list):
        return " ".join(f"[{item}]" for item in value if _string(item)) or None
    return _string(value)
