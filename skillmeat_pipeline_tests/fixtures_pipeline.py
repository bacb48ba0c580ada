"""The indexing pipeline wired to real local servers, for tests that run `marketplace_index`.

Every corpus bundle and 25 small synthetic repositories are served by the git smart-HTTP server
and the GitHub emulator; the catalog lives in a database of the `backend` fixture (which the
using module defines: "sqlite" or "postgresql").
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from skillmeat_pipeline.definitions import defs
from skillmeat_pipeline.defs.index.assets import marketplace_index
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.testing.git_server import GitHttpServer
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator, layout_bundle
from skillmeat_pipeline_tests.conftest import corpus_dir
from skillmeat_pipeline_tests.fixtures_github import make_repo


@pytest.fixture(scope="session")
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

    def api_calls(self) -> int:
        return len(self.github.api_calls())

    def run_log(self, result: dg.ExecuteInProcessResult) -> list[tuple[int, str]]:
        return run_log(self.instance, result.run_id)


def run_log(instance: dg.DagsterInstance, run_id: str) -> list[tuple[int, str]]:
    """(level, message) of every user message of a run, as the Dagster UI shows them."""
    return [
        (entry.level, entry.user_message)
        for entry in instance.all_logs(run_id)
        if not entry.is_dagster_event
    ]


@pytest.fixture
def pipeline(
    served_root: Path, backend: str, empty_database, tmp_path: Path, monkeypatch
) -> Iterator[Pipeline]:
    """Servers, env vars, a sources file, a catalog on `backend` and a Dagster test instance."""
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
