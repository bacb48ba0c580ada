import json

import pytest
from click.testing import CliRunner

from skillmeat_pipeline.cli import main
from skillmeat_pipeline_tests.conftest import corpus_dir

SUPERPOWERS = str(corpus_dir() / "obra+superpowers.bundle")


def test_table_lists_every_artifact_with_a_summary():
    result = CliRunner().invoke(main, ["detect", SUPERPOWERS])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["TYPE", "NAME", "PATH", "CONF", "PROBLEMS", "RISK"]
    assert any(
        line.split()[:3] == ["skill", "brainstorming", "skills/brainstorming"] for line in lines
    )
    assert {line.split()[-1] for line in lines[1:-1]} <= {"-", "low", "medium", "high"}
    assert lines[-1] == "16 artifacts: 1 hook, 1 plugin, 14 skill"


def test_json_uses_catalog_entry_field_names(corpus_bare_repo):
    repo = corpus_bare_repo("anthropics+claude-code")
    result = CliRunner().invoke(main, ["detect", str(repo), "--json"])
    assert result.exit_code == 0, result.stderr
    entries = json.loads(result.stdout)
    assert len(entries) == 61  # the corpus table
    for field in (
        "artifact_type",
        "path",
        "name",
        "title",
        "description",
        "confidence",
        "signals",
        "problems",
        "content_sha",
        "search_text",
    ):
        assert field in entries[0]
    agent = next(e for e in entries if e["path"].endswith("agents/agent-creator.md"))
    assert agent["artifact_type"] == "agent"
    assert agent["name"] == "agent-creator"
    assert "<example>" in agent["description"]


def test_root_hint_limits_the_scan(corpus_bare_repo):
    repo = corpus_bare_repo("anthropics+claude-code")
    result = CliRunner().invoke(
        main, ["detect", str(repo), "--root-hint", "plugins/plugin-dev", "--json"]
    )
    entries = json.loads(result.stdout)
    assert entries and all(e["path"].startswith("plugins/plugin-dev") for e in entries)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["detect", "/does/not/exist"], "error: /does/not/exist: no such file or directory"),
        (["detect", SUPERPOWERS, "--ref", "nope"], f"error: {SUPERPOWERS}: ref 'nope' not found"),
    ],
)
def test_bad_repo_or_ref_is_one_line_and_exit_2(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert result.stdout == ""


def test_not_a_repository(tmp_path):
    (tmp_path / "file.bundle").write_text("not a bundle")
    result = CliRunner().invoke(main, ["detect", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a git repository" in result.stderr
    result = CliRunner().invoke(main, ["detect", str(tmp_path / "file.bundle")])
    assert result.exit_code == 2
    assert "not a git bundle" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
