import json
import subprocess

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


def test_a_root_hint_that_matches_nothing_is_said_and_one_out_of_the_repo_refused():
    nothing = CliRunner().invoke(main, ["detect", SUPERPOWERS, "--root-hint", "Skills"])
    outside = CliRunner().invoke(main, ["detect", SUPERPOWERS, "--root-hint", "../.."])

    assert nothing.exit_code == 0
    assert nothing.stdout.strip().splitlines()[-1] == "0 artifacts: no artifacts"
    assert (
        "problem: root_hint 'Skills' matches no folder of the repository: nothing below it to "
        "index (folder names are case-sensitive)"
    ) in nothing.stderr
    assert outside.exit_code == 2
    assert outside.stderr.strip() == (
        "error: --root-hint must be a relative folder inside the repository, got '../..'"
    )


def test_a_plain_file_is_not_taken_for_a_bundle(tmp_path):
    plain = tmp_path / "notes.txt"
    plain.write_text("not a bundle\n")

    result = CliRunner().invoke(main, ["detect", str(plain)])

    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {plain}: a file that is not a git bundle; give a repository folder, a bundle "
        "made by `git bundle create`, or a git URL"
    )


def test_a_bundle_without_head_is_read_at_its_only_branch(tmp_path):
    work = tmp_path / "work"
    skill = work / "skills" / "solo" / "SKILL.md"
    skill.parent.mkdir(parents=True)
    skill.write_text("---\nname: solo\ndescription: the only skill\n---\n")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q", "-b", "trunk"], ["add", "."], ["commit", "-qm", "one"]):
        subprocess.run([*git, *args], check=True)
    subprocess.run([*git, "bundle", "create", str(tmp_path / "one.bundle"), "trunk"], check=True)
    subprocess.run([*git, "branch", "other"], check=True)
    subprocess.run(
        [*git, "bundle", "create", str(tmp_path / "two.bundle"), "trunk", "other"], check=True
    )

    one = CliRunner().invoke(main, ["detect", str(tmp_path / "one.bundle"), "--json"])
    two = CliRunner().invoke(main, ["detect", str(tmp_path / "two.bundle")])

    assert one.exit_code == 0, one.stderr
    assert [e["name"] for e in json.loads(one.stdout)] == ["solo"]
    assert two.exit_code == 2
    assert two.stderr.strip() == (
        f"error: {tmp_path / 'two.bundle'}: has no HEAD and 2 branches; give --ref (other, trunk)"
    )
