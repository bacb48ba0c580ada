"""`sources sync`, `sources list`, `search` and the `dagster` CLI on a real instance and catalog."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from skillmeat_pipeline.cli import main
from skillmeat_pipeline.lib.catalog.search import search_catalog
from skillmeat_pipeline_tests.fixtures_pipeline import Pipeline


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.mark.usefixtures("dagster_home")
def test_sync_list_materialize_search(pipeline: Pipeline):
    pipeline.sources_path.write_text(
        yaml.safe_dump(
            {"sources": [{"github": "obra/superpowers"}, {"github": "anthropics/skills"}]}
        )
    )
    runner = CliRunner()
    synced = runner.invoke(main, ["sources", "sync"])
    assert synced.exit_code == 0, synced.output
    assert synced.stdout.startswith("2 sources: 2 added, 0 removed")
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("marketplace_sources") == [
            "obra/superpowers",
            "anthropics/skills",
        ]

    listed = json.loads(runner.invoke(main, ["sources", "list", "--json"]).stdout)
    assert [s["key"] for s in listed] == ["anthropics/skills", "obra/superpowers"]
    assert all(s["last_indexed_tree_sha"] is None and s["artifact_count"] is None for s in listed)

    # The documented command, in a process of its own, on the same instance.
    materialize = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "skillmeat_pipeline.definitions",
            "--select",
            "marketplace_index",
            "--partition",
            "obra/superpowers",
        ],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert materialize.returncode == 0, materialize.stderr[-3000:]

    listed = json.loads(runner.invoke(main, ["sources", "list", "--json"]).stdout)
    superpowers = next(s for s in listed if s["key"] == "obra/superpowers")
    assert superpowers["artifact_count"] == 16
    assert superpowers["indexing_strategy"] == "sparse_manifest"
    assert len(superpowers["last_indexed_tree_sha"]) == 40
    table = runner.invoke(main, ["sources", "list"]).stdout
    assert "obra/superpowers" in table and "never indexed" in table

    found = runner.invoke(main, ["search", "creative", "--type", "skill", "--json"])
    hits = json.loads(found.stdout)
    assert hits[0]["name"] == "brainstorming"
    assert hits[0]["source_key"] == "obra/superpowers"
    text = runner.invoke(main, ["search", "no-such-word-anywhere"]).stdout
    # (a close word of the catalog may follow: "; did you mean: ...?")
    assert text.startswith("no results for 'no-such-word-anywhere'")

    # Dropping a source removes its partition and marks its rows removed.
    pipeline.sources_path.write_text(yaml.safe_dump({"sources": [{"github": "anthropics/skills"}]}))
    synced = runner.invoke(main, ["sources", "sync"])
    assert synced.stdout.startswith("1 sources: 0 added, 1 removed")
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("marketplace_sources") == ["anthropics/skills"]
    catalog = pipeline.catalog()
    assert catalog.get_source("obra/superpowers").last_status == "removed"
    assert len(catalog.entries("obra/superpowers", include_removed=True)) == 16
    assert search_catalog(catalog, "creative", artifact_type="skill") == []


def readme_force_config() -> str:
    """The `--config-json` of README's force example, as a user would copy it."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    [config] = re.findall(r"--config-json '([^']+)'", readme)
    return config


def materialize_cli(partition: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "dagster", "asset", "materialize"),
            *("-m", "skillmeat_pipeline.definitions", "--select", "marketplace_index"),
            *("--partition", partition, *extra),
        ],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.usefixtures("dagster_home")
def test_the_readme_force_example_reindexes_an_unchanged_source(pipeline: Pipeline):
    pipeline.sources_path.write_text(yaml.safe_dump({"sources": [{"github": "obra/superpowers"}]}))
    assert CliRunner().invoke(main, ["sources", "sync"]).exit_code == 0
    first = materialize_cli("obra/superpowers")
    assert first.returncode == 0, first.stderr[-3000:]
    unchanged = materialize_cli("obra/superpowers")
    assert unchanged.returncode == 0, unchanged.stderr[-3000:]
    assert pipeline.catalog().get_source("obra/superpowers").last_status == "current"

    forced = materialize_cli("obra/superpowers", "--config-json", readme_force_config())

    assert forced.returncode == 0, forced.stderr[-3000:]
    assert pipeline.catalog().get_source("obra/superpowers").last_status == "scanned"


@pytest.mark.usefixtures("dagster_home")
def test_sync_with_a_malformed_file_changes_nothing(pipeline: Pipeline):
    pipeline.sources_path.write_text("sources:\n  - github: a/b\n    colour: red\n")
    result = CliRunner().invoke(main, ["sources", "sync"])
    assert result.exit_code == 2
    assert "source #1 (a/b), field 'colour'" in result.stderr
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("marketplace_sources") == []
