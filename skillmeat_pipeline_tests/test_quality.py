"""The quality rubric: each part at both ends on hand-made artifacts, the total, the scan path."""

from typing import Any

import pytest

from skillmeat_pipeline.lib.catalog.search import search_catalog
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.findings import Finding, Severity
from skillmeat_pipeline.lib.core.models import ArtifactStatus, ArtifactType, CatalogEntry
from skillmeat_pipeline.lib.quality.rubric import WEIGHTS, quality_of, score_entries
from skillmeat_pipeline_tests.test_catalog import SOURCE, config, scan

GOOD_DESCRIPTION = (
    "Extracts tables and text from PDF files into CSV. Use when the user asks to read, split "
    "or convert a PDF; for example a bank statement. Do not use for scanned images."
)


def artifact(**fields: Any) -> CatalogEntry:
    values: dict[str, Any] = {
        "source_key": "acme/skills",
        "path": "skills/pdf-tables",
        "artifact_type": ArtifactType.SKILL,
        "name": "pdf-tables",
        "description": GOOD_DESCRIPTION,
        "confidence": 90,
        "content_sha": "tree-pdf",
        "search_text": "pdf-tables",
        "signals": ["valid_frontmatter", "has_description"],
    }
    return CatalogEntry(**(values | fields))


def part(name: str, entry: CatalogEntry, findings: list[Any] | None = None) -> int:
    return quality_of(entry, findings)[1][name]


def test_the_weights_add_up_to_100_and_a_model_artifact_gets_them_all() -> None:
    assert sum(WEIGHTS.values()) == 100
    score, components = quality_of(artifact())
    assert components == WEIGHTS
    assert score == 100


@pytest.mark.parametrize(
    ("description", "points"),
    [
        (None, 0),
        ("PDF", 5),
        ("Extracts tables from PDF files into CSV", 5),  # 39 characters
        ("Extracts tables from PDF files into CSV sheets", 15),
        ("Extracts tables from PDF files into CSV sheets, keeping headers and merged cells.", 25),
        (GOOD_DESCRIPTION, 30),
        ("x" * 1025, 10),  # over the Agent Skills limit
    ],
)
def test_description_depth(description: str | None, points: int) -> None:
    assert part("description", artifact(description=description)) == points


@pytest.mark.parametrize(
    ("name", "path", "points"),
    [
        ("pdf-tables", "skills/pdf-tables", 15),
        ("PDF Tables", "skills/pdf-tables", 0),  # title case: a corpus trap
        ("-pdf-tables", "skills/-pdf-tables", 0),  # leading dash: a corpus trap
        ("pdf--tables", "skills/pdf--tables", 0),
        ("x" * 65, "skills/" + "x" * 65, 0),
        ("pdf-tables", "skills/tables", 8),  # valid, not its folder's name
    ],
)
def test_name_validity(name: str, path: str, points: int) -> None:
    assert part("name", artifact(name=name, path=path)) == points


def test_frontmatter_completeness() -> None:
    assert part("frontmatter", artifact(signals=["valid_frontmatter"])) == 20
    assert part("frontmatter", artifact(signals=["recovered_frontmatter"])) == 10
    assert part("frontmatter", artifact(signals=[])) == 0
    plugin = artifact(artifact_type=ArtifactType.PLUGIN, signals=[])
    assert part("frontmatter", plugin) == 20
    broken = plugin.model_copy(update={"problems": ["plugin.json: not valid JSON (line 1)"]})
    assert part("frontmatter", broken) == 0


def test_guidance_examples_and_anti_triggers() -> None:
    assert part("guidance", artifact()) == 10
    assert part("guidance", artifact(description="Extracts tables. For example invoices.")) == 5
    assert part("guidance", artifact(description="Extracts tables. Not for images.")) == 5
    assert part("guidance", artifact(description="Extracts tables from PDF files.")) == 0
    deep = artifact(description="Extracts tables.", deep_search_text="<example>x</example>")
    assert part("guidance", deep) == 5


def test_structure_counts_recorded_problems() -> None:
    assert part("structure", artifact(problems=[])) == 10
    assert part("structure", artifact(problems=["a"])) == 5
    assert part("structure", artifact(problems=["a", "b", "c"])) == 0


def finding(severity: Severity) -> Finding:
    return Finding("format.name", severity, "SKILL.md", 2, "name: PDF", "not kebab-case")


@pytest.mark.parametrize(
    ("findings", "points"),
    [
        ([], 15),
        ([finding(Severity.LOW)], 10),
        ([finding(Severity.LOW), finding(Severity.MEDIUM)], 5),
        ([finding(Severity.HIGH).to_dict()], 0),  # as stored on the entry
    ],
)
def test_findings_cost_points_by_their_worst_severity(findings: list[Any], points: int) -> None:
    assert part("findings", artifact(), findings) == points


def test_the_worst_artifact_scores_zero() -> None:
    worst = artifact(name="Bad Name", description=None, signals=[], problems=["a", "b"])
    score, _ = quality_of(worst, [finding(Severity.HIGH)])
    assert score == 0


def test_the_scan_scores_new_and_updated_entries_and_keeps_unchanged_ones() -> None:
    kept = artifact(status=ArtifactStatus.UNCHANGED, quality=42, quality_components={"x": 42})
    unscored = artifact(status=ArtifactStatus.UNCHANGED, path="skills/b", name="b")
    new = artifact(status=ArtifactStatus.NEW, quality=1)
    scored = score_entries([kept, unscored, new])
    assert [e.quality for e in scored] == [42, 100, 100]
    assert scored[2].quality_components == WEIGHTS


def test_search_filters_and_sorts_by_stored_quality(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    weak = artifact(path="skills/pdf-notes", name="pdf-notes", description="PDF notes")
    strong = artifact(path="skills/pdf-tables")
    scan(catalog, score_entries([weak, strong]), "c1")

    assert {h.path: h.quality for h in search_catalog(catalog, "pdf")} == {
        "skills/pdf-notes": quality_of(weak)[0],
        "skills/pdf-tables": 100,
    }
    assert [h.path for h in search_catalog(catalog, "pdf", min_quality=90)] == ["skills/pdf-tables"]
    assert [h.path for h in search_catalog(catalog, "pdf", by_quality=True)] == [
        "skills/pdf-tables",
        "skills/pdf-notes",
    ]
