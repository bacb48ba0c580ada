"""The quality rubric (README "Quality rubric"): 0-100 from six parts, each read from what the
scan already has (the catalog entry and its findings), never from an extra fetch.

| part | weight | full marks when |
|---|---|---|
| description | 30 | a description of 80-1024 characters that says when to use it |
| name | 15 | the name follows the Agent Skills rule (and is its folder's name, for a skill) |
| frontmatter | 20 | the manifest parsed strictly (strict YAML; JSON valid, no problems) |
| guidance | 10 | the text gives examples and says when not to use it (anti-triggers) |
| structure | 10 | the scan recorded no problem on the artifact |
| findings | 15 | no security or format finding (low: 10, medium: 5, high: 0) |
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from skillmeat_pipeline.lib.core.findings import Finding, Severity
from skillmeat_pipeline.lib.core.models import ArtifactStatus, ArtifactType, CatalogEntry
from skillmeat_pipeline.lib.quality.names import name_problems

WEIGHTS: Mapping[str, int] = {
    "description": 30,
    "name": 15,
    "frontmatter": 20,
    "guidance": 10,
    "structure": 10,
    "findings": 15,
}
MAX_DESCRIPTION_CHARS = 1024
# (at least this many characters, points out of 25): a description long enough to tell a model
# when to pick the artifact, not so long that it is the body pasted in
_DESCRIPTION_DEPTH = ((80, 25), (40, 15), (1, 5))
_SAYS_WHEN = re.compile(r"\b(use (it |this )?when|when (the )?user|use for|triggers?)\b", re.I)
_EXAMPLES = re.compile(r"<example>|\bexamples?\b|\be\.g\.|\bfor instance\b", re.I)
_ANTI_TRIGGERS = re.compile(
    r"\b(do not use|don't use|not for|avoid using|never use|instead use|not intended)\b", re.I
)
_JSON_KINDS = frozenset({ArtifactType.HOOK, ArtifactType.MCP, ArtifactType.PLUGIN})
_FINDING_POINTS = {None: 15, Severity.LOW: 10, Severity.MEDIUM: 5, Severity.HIGH: 0}


def _description(description: str | None) -> int:
    text = (description or "").strip()
    if not text:
        return 0
    if len(text) > MAX_DESCRIPTION_CHARS:
        return 10  # over the Agent Skills limit: Claude Code may cut or refuse it
    depth = next(points for lower, points in _DESCRIPTION_DEPTH if len(text) >= lower)
    return depth + (5 if _SAYS_WHEN.search(text) else 0)


def _name(entry: CatalogEntry) -> int:
    if name_problems(entry.name):
        return 0
    folder = entry.path.rstrip("/").rsplit("/", 1)[-1]
    if (
        entry.artifact_type is ArtifactType.SKILL
        and entry.path not in (".", "")
        and folder != entry.name
    ):
        return 8  # valid, but not its folder's name: Claude Code finds it by the folder
    return 15


def _frontmatter(entry: CatalogEntry) -> int:
    if entry.artifact_type in _JSON_KINDS:
        return 0 if any("json" in p.lower() for p in entry.problems) else 20
    if "valid_frontmatter" in entry.signals:
        return 20
    if "recovered_frontmatter" in entry.signals:
        return 10  # only the tolerant reader could read it: strict YAML tools fail on it
    return 0


def _guidance(entry: CatalogEntry) -> int:
    text = "\n".join(t for t in (entry.description, entry.deep_search_text) if t)
    return (5 if _EXAMPLES.search(text) else 0) + (5 if _ANTI_TRIGGERS.search(text) else 0)


def _structure(entry: CatalogEntry) -> int:
    return max(0, 10 - 5 * len(entry.problems))


def _findings(findings: Iterable[Finding | Mapping[str, Any]]) -> int:
    worst: Severity | None = None
    for finding in findings:
        raw = finding.severity if isinstance(finding, Finding) else finding.get("severity")
        severity = Severity(str(raw))
        if worst is None or severity.rank > worst.rank:
            worst = severity
    return _FINDING_POINTS[worst]


def quality_of(
    entry: CatalogEntry, findings: Iterable[Finding | Mapping[str, Any]] | None = None
) -> tuple[int, dict[str, int]]:
    """(quality 0-100, points per part) of an entry; `findings` default to the entry's own
    (`entry.findings` once the catalog stores them), format findings included."""
    if findings is None:
        findings = getattr(entry, "findings", None) or []
    components = {
        "description": _description(entry.description),
        "name": _name(entry),
        "frontmatter": _frontmatter(entry),
        "guidance": _guidance(entry),
        "structure": _structure(entry),
        "findings": _findings(findings),
    }
    return sum(components.values()), components


def with_quality(
    entry: CatalogEntry, findings: Iterable[Finding | Mapping[str, Any]] | None = None
) -> CatalogEntry:
    """The entry with `quality` and `quality_components` set (what the scan step stores)."""
    score, components = quality_of(entry, findings)
    return entry.model_copy(update={"quality": score, "quality_components": components})


def score_entries(entries: Iterable[CatalogEntry]) -> list[CatalogEntry]:
    """The scan's entries with quality set on new and updated ones (and any not scored yet);
    an unchanged entry keeps what was stored, as it keeps everything else."""
    return [
        with_quality(entry)
        if entry.quality is None or entry.status is not ArtifactStatus.UNCHANGED
        else entry
        for entry in entries
    ]
