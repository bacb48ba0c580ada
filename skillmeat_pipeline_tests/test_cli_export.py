"""`catalog export` from the shell: the rows the `catalog_export` asset writes, as JSON Lines."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from skillmeat_pipeline.cli import main
from skillmeat_pipeline.lib.catalog.export import export_columns, latest_export, read_export
from skillmeat_pipeline_tests.fixtures_pipeline import Pipeline


@pytest.fixture
def backend() -> str:
    return "sqlite"


def test_export_as_jsonl_to_stdout_a_file_and_a_snapshot_gives_the_same_rows(
    pipeline: Pipeline, tmp_path: Path
):
    keys = pipeline.write_sources([{"github": "anthropics/skills"}, {"github": "obra/superpowers"}])
    assert pipeline.materialize(keys).success
    runner = CliRunner()

    printed = runner.invoke(main, ["catalog", "export", "--format", "jsonl"])
    written = runner.invoke(main, ["catalog", "export", "-o", str(tmp_path / "catalog.jsonl")])
    snapshot = runner.invoke(
        main, ["catalog", "export", "--format", "snapshot", "--dir", str(tmp_path / "exports")]
    )

    assert printed.exit_code == 0, printed.stderr
    rows = [json.loads(line) for line in printed.stdout.splitlines()]
    assert len(rows) == 21 + 16  # the corpus counts of the two sources
    assert all(list(row) == sorted(export_columns()) for row in rows)
    assert [(r["source_key"], r["artifact_type"], r["path"]) for r in rows] == sorted(
        (r["source_key"], r["artifact_type"], r["path"]) for r in rows
    )
    assert printed.stderr.strip() == f"{len(rows)} rows exported"
    assert written.exit_code == 0, written.stderr
    assert (tmp_path / "catalog.jsonl").read_text(encoding="utf-8") == printed.stdout
    assert snapshot.exit_code == 0, snapshot.stderr
    latest = latest_export(tmp_path / "exports")
    assert latest is not None and latest["rows"] == len(rows)
    assert list(read_export(tmp_path / "exports" / latest["path"])) == rows


def test_export_options_that_do_not_go_together_are_one_line_errors():
    result = CliRunner().invoke(main, ["catalog", "export", "--dir", "x"])
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == "error: --dir goes with --format snapshot; give --output for jsonl"
    )
