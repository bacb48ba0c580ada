"""`marketplace_index` in a real Dagster instance, against the local git server and GitHub emulator.

Every test runs twice: with the catalog in a SQLite file and in a scratch PostgreSQL database.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from skillmeat_pipeline.definitions import defs
from skillmeat_pipeline.defs.assets import marketplace_index
from skillmeat_pipeline.lib.catalog import Catalog
from skillmeat_pipeline.testing.git_server import Fault, GitHttpServer
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator, layout_bundle
from skillmeat_pipeline_tests.conftest import corpus_dir
from skillmeat_pipeline_tests.fixtures_github import make_repo

pytest_plugins = ["skillmeat_pipeline_tests.fixtures_db"]

COUNT_ROW = re.compile(r"^\| (?P<repo>[\w.-]+/[\w.-]+)[^|]*\|" + r"\s*([\d.]+)\s*\|" * 9)
KINDS = ("skill", "agent", "command", "hook", "mcp", "plugin")


def corpus_table() -> dict[str, dict[str, int]]:
    """Per-kind counts of every corpus repository, from the corpus README."""
    table = {}
    for line in (corpus_dir() / "README.md").read_text().splitlines():
        match = COUNT_ROW.match(line)
        if match:
            numbers = [int(n) for n in match.groups()[4:]]
            table[match["repo"]] = dict(zip(KINDS, numbers, strict=True))
    return table


@pytest.fixture(scope="module")
def served_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every corpus bundle as `owner/repo.git`, plus 25 small synthetic repositories."""
    root = tmp_path_factory.mktemp("served")
    for bundle in sorted(corpus_dir().glob("*.bundle")):
        layout_bundle(bundle, root)
    for i in range(25):
        files = {
            f"skills/skill-{j}/SKILL.md": f"---\nname: skill-{i}-{j}\ndescription: synthetic "
            f"skill {j} of repository {i}\n---\n# Skill {j}\n".encode()
            for j in range(i + 1)
        }
        make_repo(root / "synthetic" / f"repo-{i:02d}.git", files)
    return root


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@dataclass
class Pipeline:
    git: GitHttpServer
    github: GitHubEmulator
    instance: dg.DagsterInstance
    sources_path: Path
    index_url: str

    def write_sources(self, sources: list[dict]) -> list[str]:
        self.sources_path.write_text(yaml.safe_dump({"sources": sources}))
        keys = [s.get("key") or s["github"] for s in sources]
        known = set(self.instance.get_dynamic_partitions("marketplace_sources"))
        self.instance.add_dynamic_partitions(
            "marketplace_sources", [k for k in keys if k not in known]
        )
        return keys

    def materialize(self, keys: list[str], **config: object) -> dg.ExecuteInProcessResult:
        run_config = {"ops": {"marketplace_index": {"ops": {"resolve_heads": {"config": config}}}}}
        return dg.materialize(
            [marketplace_index],
            instance=self.instance,
            resources=defs.resources,
            run_config=run_config if config else None,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
            raise_on_error=False,
        )

    def catalog(self) -> Catalog:
        catalog = Catalog.from_url(self.index_url)
        catalog.migrate()
        return catalog

    def events(self, result: dg.ExecuteInProcessResult, event_type: dg.DagsterEventType) -> list:
        # From the instance: a run result holds no events of a step that failed.
        logs = self.instance.all_logs(result.run_id, of_type=event_type)
        return [log.dagster_event.event_specific_data for log in logs]

    def materializations(self, result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
        """Metadata of each partition the run materialized."""
        events = self.events(result, dg.DagsterEventType.ASSET_MATERIALIZATION)
        return {
            e.materialization.partition: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in events
        }

    def rest_calls(self) -> int:
        return len(self.github.rest_calls())


@pytest.fixture
def pipeline(
    served_root: Path, backend: str, empty_database, tmp_path: Path, monkeypatch
) -> Iterator[Pipeline]:
    with (
        empty_database(backend) as index_url,
        GitHttpServer(served_root) as git,
        GitHubEmulator(served_root, git_base_url=git.base_url) as github,
        dg.instance_for_test() as instance,
    ):
        sources_path = tmp_path / "sources.yaml"
        monkeypatch.setenv("SKILLMEAT_SOURCES_FILE", str(sources_path))
        monkeypatch.setenv("SKILLMEAT_INDEX_URL", index_url)
        monkeypatch.setenv("SKILLMEAT_GITHUB_API_URL", github.api_url)
        monkeypatch.setenv("SKILLMEAT_GITHUB_RAW_URL", github.raw_url)
        monkeypatch.setenv("SKILLMEAT_GITHUB_GIT_URL", git.base_url)
        monkeypatch.setenv("CLONE_TIMEOUT_SECONDS", "30")
        monkeypatch.setenv("MIN_CLONE_DISK_SPACE_MB", "1")
        monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        yield Pipeline(git, github, instance, sources_path, index_url)


def test_all_corpus_sources_index_to_the_corpus_counts(pipeline: Pipeline):
    table = corpus_table()
    keys = pipeline.write_sources([{"github": repo} for repo in table])
    result = pipeline.materialize(keys)
    assert result.success
    metadata = pipeline.materializations(result)
    assert set(metadata) == set(keys)
    catalog = pipeline.catalog()
    for repo, counts in table.items():
        entries = catalog.entries(repo)
        found = {kind: sum(1 for e in entries if e.artifact_type == kind) for kind in KINDS}
        assert found == counts, repo
        meta = metadata[repo]
        assert meta["artifact_count"] == sum(counts.values())
        assert meta["dagster/row_count"] == sum(counts.values())
        assert meta["api_calls"] <= 10
        stored = catalog.get_source(repo)
        assert stored.clone_target.strategy.value == meta["strategy"]
        assert meta["commit_sha"] == stored.last_indexed_commit_sha
        if sum(counts.values()) < 3:
            assert meta["strategy"] == "api", repo
        else:
            assert meta["strategy"] in ("sparse_manifest", "sparse_directory"), repo
            assert meta["bytes_fetched"] > 0
        assert meta["fallback_reason"] == "none"
    hits = catalog.search("creative", artifact_type="skill")
    assert ("obra/superpowers", "skills/brainstorming") in [(h.source_key, h.path) for h in hits]


def test_unchanged_source_costs_no_clone_and_no_rest_call(pipeline: Pipeline):
    keys = pipeline.write_sources([{"github": "obra/superpowers"}])
    assert pipeline.materialize(keys).success
    git_before = len(pipeline.git.requests())
    rest_before = pipeline.rest_calls()
    again = pipeline.materialize(keys)
    assert again.success
    meta = pipeline.materializations(again)["obra/superpowers"]
    assert meta["scan_status"] == "current"
    assert meta["api_calls"] == 0
    assert meta["artifact_count"] == 16
    assert pipeline.rest_calls() == rest_before
    # Only the ref advertisement: no upload-pack POST, so no clone.
    assert [r.method for r in pipeline.git.requests()[git_before:]] == ["GET"]


def test_git_server_down_for_one_source_falls_back_to_the_api(pipeline: Pipeline):
    keys = pipeline.write_sources([{"github": "obra/superpowers"}, {"github": "anthropics/skills"}])
    pipeline.git.set_fault("anthropics/skills", Fault.SERVER_ERROR)
    result = pipeline.materialize(keys)
    assert result.success
    metadata = pipeline.materializations(result)
    assert metadata["anthropics/skills"]["strategy"] == "api"
    assert "500" in metadata["anthropics/skills"]["fallback_reason"]
    assert metadata["anthropics/skills"]["artifact_count"] == 18
    assert metadata["obra/superpowers"]["fallback_reason"] == "none"
    assert metadata["obra/superpowers"]["strategy"] != "api"
    assert len(pipeline.catalog().entries("anthropics/skills")) == 18


def test_source_whose_fetches_all_fail_keeps_its_rows_and_fails_its_partition(pipeline: Pipeline):
    keys = pipeline.write_sources(
        [
            {"key": "plain/superpowers", "url": pipeline.git.url_for("obra/superpowers")},
            {"github": "anthropics/skills"},
        ]
    )
    assert pipeline.materialize(keys).success
    catalog = pipeline.catalog()
    before = catalog.entries("plain/superpowers")
    pipeline.git.set_fault("obra/superpowers", Fault.NOT_FOUND)
    result = pipeline.materialize(keys, force=True)
    assert not result.success
    assert set(pipeline.materializations(result)) == {"anthropics/skills"}
    assert catalog.entries("plain/superpowers") == before
    stored = catalog.get_source("plain/superpowers")
    assert stored.last_status == "failed"
    assert "404" in stored.last_error


def test_failure_in_the_middle_of_a_write_keeps_the_previous_rows(pipeline: Pipeline):
    keys = pipeline.write_sources([{"github": "obra/superpowers"}])
    assert pipeline.materialize(keys).success
    catalog = pipeline.catalog()
    before = catalog.entries("obra/superpowers")

    def fail_on_source_update(conn, cursor, statement, parameters, context, executemany):
        # entries are already updated in this transaction when the source row is
        if statement.lstrip().upper().startswith("UPDATE SOURCES SET CLONE_TARGET"):
            raise RuntimeError("injected failure while writing")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", fail_on_source_update)
    try:
        result = pipeline.materialize(keys, force=True)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", fail_on_source_update)
    assert not result.success
    assert catalog.entries("obra/superpowers") == before
    assert "injected failure" in catalog.get_source("obra/superpowers").last_error


def test_a_batched_run_gives_every_partition_its_own_metadata(pipeline: Pipeline):
    keys = pipeline.write_sources(
        [
            {
                "key": f"synthetic/repo-{i:02d}",
                "url": pipeline.git.url_for(f"synthetic/repo-{i:02d}"),
            }
            for i in range(25)
        ]
    )
    result = pipeline.materialize(keys)
    assert result.success
    metadata = pipeline.materializations(result)
    assert len(metadata) == 25
    assert {m["artifact_count"] for m in metadata.values()} == set(range(1, 26))
    distinct = {json.dumps(m, sort_keys=True, default=str) for m in metadata.values()}
    assert len(distinct) == 25
    checks = pipeline.events(result, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    assert len(checks) == 50 and all(c.passed for c in checks)
