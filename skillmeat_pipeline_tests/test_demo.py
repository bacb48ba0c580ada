"""`skillmeat-pipeline demo`: from an empty folder, with no environment set, to an indexed catalog.

The end-to-end test runs the installed command as a user would; the others check the sample
repositories and the demo folder's safety rules directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import pygit2
import pytest
from click.testing import CliRunner

from skillmeat_pipeline.cli import main
from skillmeat_pipeline.demo import MARKER, DemoError, prepare_layout
from skillmeat_pipeline.lib.catalog.search import search_catalog
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.fetch.git.tree import open_local_repository, snapshot_commit
from skillmeat_pipeline.testing.sample_marketplace import MARKET, build_sample_marketplace
from skillmeat_pipeline.testing.sample_repos import (
    SAMPLE_REPOS,
    SAMPLE_UPDATE,
    apply_update,
    build_sample_repos,
)

CLI = Path(sys.executable).with_name("skillmeat-pipeline")

# What SPEC §3 finds in each sample repository after the demo's push (counted by hand).
EXPECTED_KINDS = {
    "acme/tiny-tools": {"skill": 1, "command": 1},
    "acme/team-toolkit": {"skill": 1, "agent": 2, "command": 3, "hook": 1, "mcp": 3},
    "acme/plugin-marketplace": {
        "skill": 7,
        "agent": 8,
        "command": 7,
        "hook": 2,
        "mcp": 3,
        "plugin": 5,
    },
    "internal/ops-playbooks": {"skill": 7, "agent": 8, "command": 8, "hook": 1, "mcp": 1},
    "acme/writing-skills": {"skill": 2},
}
# strategy of each source in the demo's first and second run (SPEC §4)
EXPECTED_STRATEGIES = {
    "acme/tiny-tools": ("api", "api"),
    "acme/team-toolkit": ("sparse_manifest", "sparse_manifest"),
    "acme/plugin-marketplace": ("sparse_directory", "sparse_directory"),
    "internal/ops-playbooks": ("sparse_manifest", "sparse_directory"),
    "acme/writing-skills": ("sparse_directory", "sparse_directory"),
}


def clean_environment() -> dict[str, str]:
    """The user's environment, without anything the pipeline would read: nothing set up first."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SKILLMEAT_", "DAGSTER_", "OTEL_"))
        and name not in ("GITHUB_TOKEN", "CLONE_TIMEOUT_SECONDS", "MIN_CLONE_DISK_SPACE_MB")
    }


def materializations_by_run(home: Path) -> list[dict[str, dict[str, object]]]:
    """For each run of the demo's Dagster instance, oldest first: partition -> metadata values."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # newest first from the instance; the two runs of the sample sources come first, then
        # the marketplace's (step 7), whose unreachable entries fail their run
        runs = instance.get_runs()[::-1][:2]
        assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
        result = []
        for run in runs:
            logs = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            result.append(
                {
                    log.dagster_event.event_specific_data.materialization.partition: {
                        key: value.value
                        for key, value in (
                            log.dagster_event.event_specific_data.materialization.metadata.items()
                        )
                    }
                    for log in logs
                }
            )
        keys = instance.get_dynamic_partitions("marketplace_sources")
    assert keys[: len(EXPECTED_KINDS)] == list(EXPECTED_KINDS)
    assert keys[len(EXPECTED_KINDS)] == MARKET
    assert all(key.endswith(f"@{MARKET}") for key in keys[len(EXPECTED_KINDS) + 1 :])
    return result


def test_demo_in_an_empty_folder_indexes_every_sample_source(tmp_path: Path):
    assert CLI.is_file(), f"{CLI} is missing: is the package installed in this environment?"
    completed = subprocess.run(
        [str(CLI), "demo"],
        cwd=tmp_path,
        env=clean_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    output = completed.stdout
    demo_dir = tmp_path / ".demo"

    # the catalog holds every artifact of every source, by kind
    catalog = Catalog.from_url(f"sqlite:///{demo_dir / 'catalog.sqlite'}")
    try:
        for key, kinds in EXPECTED_KINDS.items():
            found = Counter(entry.artifact_type.value for entry in catalog.entries(key))
            assert found == Counter(kinds), key
        # the push: one command added, one agent changed, one command deleted (kept as removed)
        statuses = {
            entry.path: entry.status.value
            for entry in catalog.entries("internal/ops-playbooks", include_removed=True)
        }
        assert statuses.pop(".claude/commands/incident/escalate.md") == "new"
        assert statuses.pop(".claude/agents/db-admin.md") == "updated"
        assert statuses.pop(".claude/commands/cost-report.md") == "removed"
        assert set(statuses.values()) == {"unchanged"} and len(statuses) == 23
        # traps: a skill without frontmatter, an `agents/` folder inside a skill, React hooks
        paths = {entry.path: entry for entry in catalog.entries("internal/ops-playbooks")}
        assert paths[".claude/skills/incident-response"].title == "Incident response"
        assert not any("/skills/postmortem/agents/" in path for path in paths)
        toolkit = [entry.path for entry in catalog.entries("acme/team-toolkit")]
        assert not any("web/src/hooks" in path for path in toolkit)
        sources = {source.key: source for source in catalog.list_sources()}
        marketplace = sources["acme/plugin-marketplace"].marketplace["marketplaces"][0]
        missing = [p["name"] for p in marketplace["plugins"] if not p["exists"]]
        assert missing == ["legacy-linter"]
        hits = search_catalog(catalog, "runbook", source_key="internal/ops-playbooks")
        assert "runbook-author" in {hit.name for hit in hits}
    finally:
        catalog.dispose()

    # the Dagster instance under .demo: two runs, per-partition metadata of each
    first, second = materializations_by_run(demo_dir / "dagster_home")
    assert set(first) == set(second) == set(EXPECTED_KINDS)
    for key, (strategy_1, strategy_2) in EXPECTED_STRATEGIES.items():
        total = sum(EXPECTED_KINDS[key].values())
        assert first[key]["strategy"] == strategy_1, key
        assert first[key]["artifact_count"] == total, key
        assert first[key]["scan_status"] == "scanned"
        assert second[key]["strategy"] == strategy_2, key
        assert second[key]["artifact_count"] == total, key
        assert 0 <= first[key]["api_calls"] <= 10
        if key == "internal/ops-playbooks":
            assert second[key]["scan_status"] == "scanned"
            assert second[key]["commit_sha"] != first[key]["commit_sha"]
        else:  # unchanged sources cost nothing
            assert second[key]["scan_status"] == "current"
            assert second[key]["api_calls"] == 0
            assert second[key]["commit_sha"] == first[key]["commit_sha"]
    assert first["acme/tiny-tools"]["api_calls"] > 0 and first["acme/tiny-tools"]["clone_ms"] == 0
    assert first["internal/ops-playbooks"]["api_calls"] == 0  # not on GitHub: no REST call

    # the printed summary tables (rows indented by two spaces) are read from that metadata
    table_lines = [
        line.split()
        for line in output.splitlines()
        if line.startswith("  ") and not line.startswith("   ")
    ]
    rows = [cells for cells in table_lines if cells and cells[0] in EXPECTED_KINDS]
    assert len(rows) == 2 * len(EXPECTED_KINDS)
    for cells in rows[: len(EXPECTED_KINDS)]:
        assert cells[1:5] == [
            "scanned",
            EXPECTED_STRATEGIES[cells[0]][0],
            str(first[cells[0]]["artifact_count"]),
            str(first[cells[0]]["api_calls"]),
        ]
    for step in range(1, 8):
        assert f"[{step}/7]" in output
    # step 7: the marketplace of references, then its plugin sources, each as SPEC §2.1 says
    sample = build_sample_marketplace(tmp_path / "expected")  # what the demo built
    market = {
        cells[0]: cells[1]
        for cells in table_lines
        if cells and (cells[0] == MARKET or cells[0].endswith(f"@{MARKET}"))
    }
    expected = {MARKET: "scanned"} | {f"{name}@{MARKET}": "scanned" for name in sample.scanned}
    expected |= {f"{name}@{MARKET}": "failed" for name in sample.failed}
    expected |= {f"{name}@{MARKET}": "skipped" for name in sample.skipped}
    assert market == expected
    assert f"a-skill (mono-a@{MARKET})" in output
    assert "skillmeat-pipeline demo --serve" in output


def test_sample_repositories_hold_the_artifacts_they_declare(tmp_path: Path):
    repos = build_sample_repos(tmp_path)
    assert [repo.slug for repo in repos] == list(EXPECTED_KINDS)
    for repo in repos:
        assert dict(repo.expected) == EXPECTED_KINDS[repo.slug]
        with open_local_repository(str(tmp_path / f"{repo.slug}.git")) as git:
            detection = detect_artifacts(snapshot_commit(git, None), repo_name=repo.slug)
        found = Counter(artifact.artifact_type.value for artifact in detection.artifacts)
        assert found == Counter(repo.expected), repo.slug
    apply_update(tmp_path, SAMPLE_UPDATE)
    with open_local_repository(str(tmp_path / f"{SAMPLE_UPDATE.slug}.git")) as git:
        detection = detect_artifacts(snapshot_commit(git, None), repo_name=SAMPLE_UPDATE.slug)
    found = Counter(artifact.artifact_type.value for artifact in detection.artifacts)
    assert found == Counter(SAMPLE_UPDATE.expected)


def test_sample_repositories_are_the_same_on_every_build(tmp_path: Path):
    def heads(root: Path) -> list[str]:
        build_sample_repos(root)
        apply_update(root, SAMPLE_UPDATE)
        return [
            str(pygit2.Repository(str(root / f"{repo.slug}.git")).head.target)
            for repo in SAMPLE_REPOS
        ]

    first, second = heads(tmp_path / "a"), heads(tmp_path / "b")
    assert first == second
    assert len(set(first)) == len(SAMPLE_REPOS)


def test_demo_rebuilds_its_own_folder_and_refuses_any_other(tmp_path: Path):
    own = tmp_path / "own"
    layout = prepare_layout(own)
    (layout.root / "leftover.txt").write_text("from an earlier run")
    layout = prepare_layout(own)
    assert (layout.root / MARKER).is_file()
    assert not (layout.root / "leftover.txt").exists()
    assert "telemetry" in (layout.dagster_home / "dagster.yaml").read_text()

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DemoError, match="not made by the demo"):
        prepare_layout(foreign)
    assert (foreign / "notes.txt").read_text() == "mine"

    result = CliRunner().invoke(main, ["demo", "--dir", str(foreign)])
    assert result.exit_code == 2
    assert "not made by the demo" in result.output


def test_demo_help_says_what_it_does_with_examples():
    result = CliRunner().invoke(main, ["--help"])
    assert "demo" in result.output
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "sample" in result.output and "Examples:" in result.output
    assert "skillmeat-pipeline demo --serve" in result.output
