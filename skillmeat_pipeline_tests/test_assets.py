"""`marketplace_index` in a real Dagster instance, against the local git server and GitHub emulator.

Every test runs twice: with the catalog in a SQLite file and in a scratch PostgreSQL database.
"""

import json

import dagster as dg
import pytest
import sqlalchemy as sa

from skillmeat_pipeline.defs.index.checks import INDEX_CHECK_SPECS
from skillmeat_pipeline.lib.catalog.search import search_catalog
from skillmeat_pipeline.testing.git_server import Fault
from skillmeat_pipeline_tests.conftest import ARTIFACT_KINDS, corpus_table
from skillmeat_pipeline_tests.fixtures_pipeline import Pipeline, run_log


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def test_all_corpus_sources_index_to_the_corpus_counts(pipeline: Pipeline):
    table = {name.replace("+", "/"): counts for name, counts in corpus_table().items()}
    keys = pipeline.write_sources([{"github": repo} for repo in table])
    result = pipeline.materialize(keys)
    assert result.success
    metadata = pipeline.materializations(result)
    assert set(metadata) == set(keys)
    catalog = pipeline.catalog()
    for repo, counts in table.items():
        entries = catalog.entries(repo)
        found = {
            kind: sum(1 for e in entries if e.artifact_type == kind) for kind in ARTIFACT_KINDS
        }
        assert found == {kind: counts[kind] for kind in ARTIFACT_KINDS}, repo
        meta = metadata[repo]
        assert meta["artifact_count"] == counts["artifacts"]
        assert meta["dagster/row_count"] == counts["artifacts"]
        assert meta["api_calls"] <= 10
        stored = catalog.get_source(repo)
        assert stored.clone_target.strategy.value == meta["strategy"]
        assert meta["commit_sha"] == stored.last_indexed_commit_sha
        if counts["artifacts"] < 3:
            assert meta["strategy"] == "api", repo
        else:
            assert meta["strategy"] in ("sparse_manifest", "sparse_directory"), repo
            assert meta["bytes_fetched"] > 0
        assert meta["fallback_reason"] == "none"
    hits = search_catalog(catalog, "creative", artifact_type="skill")
    assert ("obra/superpowers", "skills/brainstorming") in [(h.source_key, h.path) for h in hits]


def test_unchanged_source_costs_no_clone_and_no_rest_call(pipeline: Pipeline):
    keys = pipeline.write_sources([{"github": "obra/superpowers"}])
    assert pipeline.materialize(keys).success
    git_before = len(pipeline.git.requests())
    rest_before = pipeline.api_calls()
    again = pipeline.materialize(keys)
    assert again.success
    meta = pipeline.materializations(again)["obra/superpowers"]
    assert meta["scan_status"] == "current"
    assert meta["api_calls"] == 0
    assert meta["artifact_count"] == 16
    assert pipeline.api_calls() == rest_before
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
    assert metadata["anthropics/skills"]["artifact_count"] == 21  # 18 skills, 3 entry plugins
    # the trust rules read every text file of its skills and of its marketplace-entry plugins
    # (rooted at the repository): more than the archive threshold, so one archive, no raw read
    assert metadata["anthropics/skills"]["raw_reads"] == 0
    assert metadata["anthropics/skills"]["archive_bytes"] > 0
    assert metadata["obra/superpowers"]["archive_bytes"] == 0
    assert metadata["obra/superpowers"]["fallback_reason"] == "none"
    assert metadata["obra/superpowers"]["strategy"] != "api"
    assert len(pipeline.catalog().entries("anthropics/skills")) == 21


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
    # the failed partition carries its reason where the UI shows the partition
    (observation,) = [
        record.asset_observation
        for record in pipeline.instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("marketplace_index")), limit=10
        ).records
        if record.run_id == result.run_id
    ]
    assert observation.partition == "plain/superpowers"
    assert observation.metadata["scan_status"].value == "failed"
    assert observation.metadata["error"].value == stored.last_error
    assert observation.description == f"not indexed: {stored.last_error}"
    # the run says how much of it succeeded, in its tags and its failure
    tags = pipeline.instance.get_run_by_id(result.run_id).tags
    assert (tags["skillmeat/sources_indexed"], tags["skillmeat/sources_failed"]) == ("1", "1")
    (failure,) = pipeline.events(result, dg.DagsterEventType.STEP_FAILURE)
    assert "1 of 2 sources failed (1 indexed)" in failure.error.message


def test_a_run_that_passes_its_checks_does_not_log_them_as_missing(pipeline: Pipeline):
    keys = pipeline.write_sources([{"github": "anthropics/skills"}])
    result = pipeline.materialize(keys)
    assert result.success
    messages = [message for _, message in run_log(pipeline.instance, result.run_id)]
    assert messages
    assert not [m for m in messages if "did not yield or return expected outputs" in m]
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


def test_failure_in_the_middle_of_a_write_keeps_the_previous_rows(pipeline: Pipeline):
    broken, other = "obra/superpowers", "anthropics/claude-agent-sdk-python"
    keys = pipeline.write_sources([{"github": broken}, {"github": other}])
    assert pipeline.materialize(keys).success
    catalog = pipeline.catalog()
    before = catalog.entries(broken)

    def fail_on_source_update(_conn, _cursor, statement, parameters, _context, _executemany):
        # entries are already updated in this transaction when the source row is
        if statement.lstrip().upper().startswith("UPDATE SOURCES SET CLONE_TARGET") and (
            broken in str(parameters)
        ):
            raise RuntimeError("injected failure while writing")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", fail_on_source_update)
    try:
        result = pipeline.materialize(keys, force=True)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", fail_on_source_update)
    assert not result.success
    assert catalog.entries(broken) == before
    assert "injected failure" in catalog.get_source(broken).last_error
    # the source written after it is indexed and reported as usual
    assert set(pipeline.materializations(result)) == {other}
    assert catalog.get_source(other).last_error is None
    assert any(
        f"source {broken}: writing its rows failed" in message and "rolled back" in message
        for _, message in pipeline.run_log(result)
    )


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
    assert len(checks) == 25 * len(INDEX_CHECK_SPECS) and all(c.passed for c in checks)


def test_a_transient_clone_error_is_retried_once_then_the_clone_path_succeeds(pipeline: Pipeline):
    keys = pipeline.write_sources(
        [{"key": "plain/superpowers", "url": pipeline.git.url_for("obra/superpowers")}]
    )
    # the first pack request is cut off mid-way; the head lookup (a GET) is served normally
    pipeline.git.set_fault("obra/superpowers", Fault.DROP_MID_PACK, method="POST", times=1)
    result = pipeline.materialize(keys)
    assert result.success
    meta = pipeline.materializations(result)["plain/superpowers"]
    assert meta["strategy"] == "sparse_manifest"
    assert meta["artifact_count"] == 16
    assert meta["fallback_reason"] == "none"
    packs = [r for r in pipeline.git.requests("obra/superpowers") if r.method == "POST"]
    assert len(packs) >= 2  # the cut one, then the retried clone's
    retries = [
        e for e in pipeline.instance.all_logs(result.run_id) if "retry 1" in (e.user_message or "")
    ]
    assert len(retries) == 1 and "plain/superpowers" in retries[0].user_message
