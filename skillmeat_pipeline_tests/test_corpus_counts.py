"""Per-kind artifact counts of every corpus repository, exactly as the corpus README states."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.models import ArtifactType
from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit
from skillmeat_pipeline_tests.conftest import corpus_names, corpus_table

KINDS = [kind.value for kind in ArtifactType]


TABLE = corpus_table()


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
