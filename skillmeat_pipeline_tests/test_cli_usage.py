"""The command's own surface: version, usage errors and the Dagster instance it needs."""

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from skillmeat_pipeline.cli import main


def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skillmeat_pipeline.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_version_is_the_installed_package_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"skillmeat-pipeline, version {version('skillmeat-pipeline')}"


def test_no_arguments_print_usage_and_exit_2() -> None:
    result = CliRunner().invoke(main, [], prog_name="skillmeat-pipeline")
    assert result.exit_code == 2
    assert "Usage: skillmeat-pipeline" in result.output


def test_sources_sync_needs_dagster_home_in_one_line_and_touches_nothing(tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_text("sources:\n  - key: a/b\n    github: a/b\n")
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["SKILLMEAT_INDEX_URL"] = f"sqlite:///{tmp_path / 'catalog.sqlite'}"

    unset = run_cli("sources", "sync", cwd=tmp_path, env=env)
    missing = run_cli(
        "sources", "sync", cwd=tmp_path, env=env | {"DAGSTER_HOME": str(tmp_path / "nope")}
    )

    assert unset.returncode == 2
    assert unset.stderr.strip().splitlines() == [
        "error: DAGSTER_HOME is not set: set it to the folder of the Dagster instance that the "
        "daemon and the UI use, e.g. `export DAGSTER_HOME=$PWD/.dagster_home`"
    ]
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1
    assert f"DAGSTER_HOME={tmp_path / 'nope'} is not a folder" in missing.stderr
    assert "Traceback" not in unset.stderr + missing.stderr
    assert not (tmp_path / "catalog.sqlite").exists()


def test_an_instance_without_dagster_yaml_syncs_without_dagsters_warning(tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_text("sources:\n  - key: a/b\n    github: a/b\n")
    (tmp_path / "home").mkdir()
    env = dict(os.environ) | {
        "DAGSTER_HOME": str(tmp_path / "home"),
        "SKILLMEAT_INDEX_URL": f"sqlite:///{tmp_path / 'catalog.sqlite'}",
    }

    result = run_cli("sources", "sync", cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 sources: 1 added, 0 removed (a/b)"
    assert "No dagster instance configuration file" not in result.stderr


def test_reading_commands_do_not_create_a_catalog_where_there_is_none(tmp_path: Path, monkeypatch):
    missing = tmp_path / "catalog.sqlite"
    monkeypatch.setenv("SKILLMEAT_INDEX_URL", f"sqlite:///{missing}")
    runner = CliRunner()
    for args in (["search", "pdf"], ["findings"], ["catalog", "export"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, args
        assert result.stderr.strip() == (
            f"error: no catalog at {missing}: run `skillmeat-pipeline sources sync`, then index "
            "the sources (or set SKILLMEAT_INDEX_URL to the catalog's URL)"
        )
    assert not missing.exists()


def test_a_limit_below_one_is_a_usage_error():
    for command in ("search", "findings"):
        args = (
            [command, "pdf", "--limit", "0"] if command == "search" else [command, "--limit", "0"]
        )
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2
        assert "Invalid value for '--limit': 0 is not in the range x>=1." in result.stderr
