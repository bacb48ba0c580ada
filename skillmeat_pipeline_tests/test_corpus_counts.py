"""Per-kind artifact counts of every corpus repository, exactly as the corpus README states."""

from __future__ import annotations

import collections
import re
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from skillmeat_pipeline.lib.detection import detect_artifacts
from skillmeat_pipeline.lib.git_tree import snapshot_commit
from skillmeat_pipeline.lib.models import ArtifactType
from skillmeat_pipeline_tests.conftest import corpus_dir, corpus_names

KINDS = [kind.value for kind in ArtifactType]


def readme_table() -> dict[str, dict[str, int]]:
    """`owner+repo` -> the README row's numbers (`artifacts` and one column per kind)."""
    lines = (corpus_dir() / "README.md").read_text(encoding="utf-8").splitlines()
    header_index = next(i for i, line in enumerate(lines) if line.startswith("| repository"))
    headers = [cell.strip() for cell in lines[header_index].strip("|").split("|")]
    rows: dict[str, dict[str, int]] = {}
    for line in lines[header_index + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        # "miethe/skillmeat (application + `.claude/`)" names the bundle miethe+skillmeat
        repository = re.match(r"[\w.-]+/[\w.-]+", cells[0])
        assert repository, f"unreadable repository cell: {cells[0]!r}"
        numbers = dict(zip(headers, cells, strict=True))
        rows[repository.group().replace("/", "+", 1)] = {
            column: int(numbers[column]) for column in ["artifacts", *KINDS]
        }
    return rows


TABLE = readme_table()


def test_the_table_covers_every_bundle() -> None:
    assert sorted(TABLE) == corpus_names()


@pytest.mark.parametrize("name", sorted(TABLE))
def test_detection_finds_the_tables_counts(
    corpus_bare_repo: Callable[[str], Path], name: str
) -> None:
    snapshot = snapshot_commit(pygit2.Repository(str(corpus_bare_repo(name))))

    detection = detect_artifacts(snapshot, repo_name=name.split("+", 1)[1])

    counts = collections.Counter(artifact.artifact_type.value for artifact in detection.artifacts)
    expected = TABLE[name]
    assert {kind: counts[kind] for kind in KINDS} == {kind: expected[kind] for kind in KINDS}
    assert len(detection.artifacts) == expected["artifacts"]
    paths = [(artifact.artifact_type, artifact.path) for artifact in detection.artifacts]
    assert len(set(paths)) == len(paths)
