"""The catalog assets downstream of `marketplace_index`, refreshed by the real declarative
automation evaluation after index runs, once per burst; the export read back.

Index runs go through the real pipeline (local git server); the automation is evaluated with
`dg.evaluate_automation_conditions` at chosen times, as the sensor would, and the runs it asks
for are launched the way the daemon would, with `dg.materialize`.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from skillmeat_pipeline.definitions import defs
from skillmeat_pipeline.defs.catalog.assets import CATALOG_ASSETS
from skillmeat_pipeline.lib.catalog.export import export_columns, latest_export, read_export
from skillmeat_pipeline_tests.fixtures_pipeline import Pipeline

CATALOG_KEYS = {a.key for a in CATALOG_ASSETS}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


class Automation:
    """`evaluate_automation_conditions` with its cursor kept between evaluations."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.cursor = None

    def requested(self, at: datetime) -> set[dg.AssetKey]:
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=self.instance, cursor=self.cursor, evaluation_time=at
        )
        self.cursor = result.cursor
        return {key for key in CATALOG_KEYS if result.get_num_requested(key)} | {
            r.key for r in result.results if r.true_subset.size and r.key not in CATALOG_KEYS
        }


def next_tick(after: datetime) -> datetime:
    """The first 10-minute cron tick after `after`."""
    base = after.replace(second=0, microsecond=0)
    return base + timedelta(minutes=10 - base.minute % 10)


def run_requested(pipeline: Pipeline, keys: set[dg.AssetKey]) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [a for a in CATALOG_ASSETS if a.key in keys],
        instance=pipeline.instance,
        resources=defs.resources,
    )


def sources(pipeline: Pipeline, count: int) -> list[str]:
    return pipeline.write_sources(
        [
            {
                "key": f"synthetic/repo-{i:02d}",
                "url": pipeline.git.url_for(f"synthetic/repo-{i:02d}"),
            }
            for i in range(count)
        ]
    )


def materialized(pipeline: Pipeline, key: dg.AssetKey) -> int:
    return len(
        pipeline.instance.fetch_materializations(key, limit=100).records  # bounded: a few runs
    )


def test_catalog_assets_refresh_once_after_a_burst_of_index_runs(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKILLMEAT_EXPORT_DIR", str(tmp_path / "exports"))
    automation = Automation(pipeline.instance)
    start = next_tick(datetime.now(UTC)) + timedelta(minutes=10, seconds=30)
    assert automation.requested(start) == set()  # nothing indexed yet

    keys = sources(pipeline, 6)
    for batch in (keys[:2], keys[2:4], keys[4:]):  # a burst: three index runs
        assert pipeline.materialize(batch).success
    assert automation.requested(start + timedelta(minutes=5)) == set()  # no tick since

    requested = automation.requested(start + timedelta(minutes=10))
    assert requested == CATALOG_KEYS  # one refresh for the burst; the index is not requested
    assert run_requested(pipeline, requested).success
    assert automation.requested(start + timedelta(minutes=10, seconds=30)) == set()

    # an index run right after a refresh waits for the next tick, then refreshes once
    assert pipeline.materialize(keys[:1], force=True).success
    assert automation.requested(start + timedelta(minutes=15)) == set()
    requested = automation.requested(start + timedelta(minutes=20))
    assert requested == CATALOG_KEYS
    assert run_requested(pipeline, requested).success
    assert automation.requested(start + timedelta(minutes=30)) == set()  # nothing new since
    assert {key: materialized(pipeline, key) for key in CATALOG_KEYS} == dict.fromkeys(
        CATALOG_KEYS, 2
    )


def test_the_export_round_trips_and_the_assets_record_plottable_metadata(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_dir = tmp_path / "exports"
    monkeypatch.setenv("SKILLMEAT_EXPORT_DIR", str(export_dir))
    keys = sources(pipeline, 4)
    assert pipeline.materialize(keys).success

    result = run_requested(pipeline, CATALOG_KEYS)  # by hand
    assert result.success

    latest = latest_export(export_dir)
    assert latest is not None
    rows = list(read_export(export_dir / latest["path"]))
    catalog = pipeline.catalog()
    try:
        entries = [e for key in keys for e in catalog.entries(key)]
    finally:
        catalog.dispose()
    assert len(entries) == 1 + 2 + 3 + 4 == latest["rows"]
    assert [(r["source_key"], r["path"], r["content_sha"], r["name"]) for r in rows] == sorted(
        (e.source_key, e.path, e.content_sha, e.name) for e in entries
    )
    assert all(list(r) == sorted(export_columns()) for r in rows)
    assert {r["copies"] for r in rows} == {1}  # every synthetic skill differs

    metadata = {
        key: pipeline.instance.fetch_materializations(key, limit=1)
        .records[0]
        .asset_materialization.metadata
        for key in CATALOG_KEYS
    }
    export = metadata[dg.AssetKey("catalog_export")]
    assert export["dagster/row_count"].value == 10
    assert export["bytes"].value == (export_dir / latest["path"]).stat().st_size
    assert export["sha256"].value == latest["sha256"]
    summary = metadata[dg.AssetKey("catalog_summary")]
    assert (summary["artifacts"].value, summary["kind_skill"].value) == (10, 10)
    assert summary["sources_scanned"].value == 4
    duplicates = metadata[dg.AssetKey("catalog_duplicates")]
    assert (duplicates["live_rows"].value, duplicates["duplicate_rows"].value) == (10, 0)
