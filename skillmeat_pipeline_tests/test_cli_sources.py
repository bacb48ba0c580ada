"""`sources add/remove` (the file edited by hand stays as written), `sources sync --dry-run/--json`
and `sources list` without a catalog, through the real CLI."""

import json
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner, Result

from skillmeat_pipeline.cli import main
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.addresses import ALLOWED_PRIVATE_HOSTS

GOLDEN = Path(__file__).parent / "golden"
PARTITIONS = "marketplace_sources"


@pytest.fixture
def sources_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "sources.yaml"
    monkeypatch.setenv("SKILLMEAT_SOURCES_FILE", str(path))
    monkeypatch.delenv(ALLOWED_PRIVATE_HOSTS, raising=False)
    for host in ("GIT", "API", "RAW"):
        monkeypatch.delenv(f"SKILLMEAT_GITHUB_{host}_URL", raising=False)
    return path


@pytest.fixture
def index_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "catalog" / "index.sqlite"
    monkeypatch.setenv("SKILLMEAT_INDEX_URL", f"sqlite:///{path}")
    return path


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


# -- `sources add` / `sources remove` --------------------------------------------------------------


def test_add_then_remove_keep_every_other_line_as_written(sources_file: Path):
    sources_file.write_bytes((GOLDEN / "sources_hand_written.yaml").read_bytes())

    added = cli("sources", "add", "https://git.example.com/team/reviewers.git", "--ref", "dev")
    assert added.exit_code == 0, added.output
    assert sources_file.read_text() == (GOLDEN / "sources_added.yaml").read_text()
    assert added.stdout.splitlines()[0] == f"{sources_file}: added team/reviewers; 4 sources"
    assert "sources sync" in added.stdout

    # the entry's own lines go; the heading comment below it (about the next entry) stays
    removed = cli("sources", "remove", "wshobson/agents")
    assert removed.exit_code == 0, removed.output
    assert sources_file.read_text() == (GOLDEN / "sources_removed.yaml").read_text()
    assert cli("sources", "check").exit_code == 0
    assert [p.name for p in sources_file.parent.iterdir()] == ["sources.yaml"]  # no temp file


def test_add_creates_the_file_and_remove_of_the_last_source_leaves_an_empty_list(
    sources_file: Path,
):
    assert cli("sources", "add", "obra/superpowers", "--root-hint", "skills").exit_code == 0
    assert sources_file.read_text() == (
        "sources:\n  - github: obra/superpowers\n    root_hint: skills\n"
    )
    assert cli("sources", "add", "acme/tools", "--key", "acme").exit_code == 0
    assert sources_file.read_text().endswith("  - key: acme\n    github: acme/tools\n")
    assert cli("sources", "remove", "obra/superpowers").exit_code == 0
    assert cli("sources", "remove", "acme").exit_code == 0
    assert sources_file.read_text() == "sources: []\n"
    # and `sources: []` takes an entry again
    assert cli("sources", "add", "obra/superpowers").exit_code == 0
    assert sources_file.read_text() == "sources:\n  - github: obra/superpowers\n"


def test_indentation_and_line_endings_follow_the_file(sources_file: Path):
    sources_file.write_bytes(b"sources:\r\n- github: a/one\r\n  ref: main # pinned")
    assert cli("sources", "add", "b/two").exit_code == 0
    assert sources_file.read_bytes() == (
        b"sources:\r\n- github: a/one\r\n  ref: main # pinned\r\n- github: b/two\r\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "anthropics/skills"], "new source #4 (anthropics/skills), field 'key': duplicate"),
        (["add", "ANTHROPICS/Skills", "--key", "other"], "the same repository as source #1"),
        (["add", "https://git.example.com/platform/tools.git/"], "the same repository"),
        (["add", "https://me:hunter2@git.example.com/a/b.git"], "credentials"),
        (["add", "https://git.example.com/a/b.git?access_token=abc"], "credentials"),
        (["add", "http://127.0.0.1:9/a/b.git"], "loopback"),
        (["add", "http://169.254.169.254/a/b.git"], "link-local"),
        (["add", "o/r", "--key", "bad,key"], "not a valid partition key"),
        (["add", "o/r", "--root-hint", "../up"], "relative folder"),
        (["add", "not a source"], "neither OWNER/REPO nor a git URL"),
        (["remove", "nope/nope"], "its keys: anthropics/skills, wshobson/agents, internal/tools"),
    ],
)
def test_a_refused_edit_is_one_line_exit_2_and_leaves_the_file_byte_identical(
    sources_file: Path, args: list[str], message: str
):
    original = (GOLDEN / "sources_hand_written.yaml").read_bytes()
    sources_file.write_bytes(original)
    refused = cli("sources", *args)
    assert refused.exit_code == 2, refused.output
    assert refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: ") and message in line, line
    assert line.endswith("nothing was changed")
    assert "hunter2" not in line and "abc" not in line
    assert sources_file.read_bytes() == original
    assert [p.name for p in sources_file.parent.iterdir()] == ["sources.yaml"]


def test_a_file_that_cannot_be_read_is_refused_before_any_edit(sources_file: Path):
    sources_file.write_text("sources:\n  - github: a/one\nsources: []\n")
    refused = cli("sources", "add", "b/two")
    assert refused.exit_code == 2 and "key 'sources' is repeated" in refused.stderr
    assert cli("sources", "remove", "a/one").exit_code == 2
    assert sources_file.read_text() == "sources:\n  - github: a/one\nsources: []\n"
    sources_file.unlink()
    missing = cli("sources", "remove", "a/one")
    assert missing.exit_code == 2 and "not found" in missing.stderr
    assert not sources_file.exists()


def test_remove_fixes_a_file_with_a_bad_entry_and_names_what_is_left(sources_file: Path):
    sources_file.write_text(
        "sources:\n  - github: a/one\n  - github: b/two\n    colour: red\n  - github: A/One\n"
    )
    removed = cli("sources", "remove", "b/two")
    assert removed.exit_code == 0, removed.output
    assert sources_file.read_text() == "sources:\n  - github: a/one\n  - github: A/One\n"
    # the problem the file still has is not the edit's: said, not refused
    assert "warning:" in removed.stderr and "the same repository as source #1" in removed.stderr


# -- `sources sync --dry-run` / `--json` -----------------------------------------------------------


def partition_keys() -> list[str]:
    with dg.DagsterInstance.get() as instance:
        return instance.get_dynamic_partitions(PARTITIONS)


def source_rows(index_url: str) -> list[dict]:
    catalog = Catalog.from_url(index_url)
    try:
        return [r.model_dump() for r in catalog.list_sources(include_removed=True)]
    finally:
        catalog.dispose()


@pytest.mark.usefixtures("dagster_home")
def test_dry_run_changes_nothing_and_json_holds_the_changes(sources_file: Path, index_path: Path):
    sources_file.write_text("sources:\n  - github: a/one\n  - github: b/two\n")
    assert cli("sources", "sync").exit_code == 0
    assert partition_keys() == ["a/one", "b/two"]
    sources_file.write_text("sources:\n  - github: b/two\n  - github: c/three\n")
    index_url = f"sqlite:///{index_path}"
    rows_before = source_rows(index_url)

    dry = cli("sources", "sync", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines() == [
        "2 sources: 1 to add, 1 to remove; nothing was changed (--dry-run)",
        "  + c/three",
        "  - a/one",
    ]
    planned = cli("sources", "sync", "--dry-run", "--json")
    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.stdout) == {
        "sources": 2,
        "added": ["c/three"],
        "removed": ["a/one"],
        "plugin_sources": [],
        "skipped": [],
        "problems": [],
        "dry_run": True,
    }
    assert partition_keys() == ["a/one", "b/two"]
    assert source_rows(index_url) == rows_before

    synced = cli("sources", "sync", "--json")
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.stdout) == json.loads(planned.stdout) | {"dry_run": False}
    assert partition_keys() == ["b/two", "c/three"]
    removed = {r["key"]: r["removed_at"] for r in source_rows(index_url)}
    assert removed["a/one"] is not None and removed["c/three"] is None
    again = json.loads(cli("sources", "sync", "--dry-run", "--json").stdout)
    assert (again["added"], again["removed"]) == ([], [])


@pytest.mark.usefixtures("dagster_home")
def test_dry_run_without_a_catalog_does_not_create_one(sources_file: Path, index_path: Path):
    sources_file.write_text("sources:\n  - github: a/one\n")
    dry = cli("sources", "sync", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["added"] == ["a/one"]
    assert not index_path.parent.exists()
    assert partition_keys() == []


# -- `sources list` --------------------------------------------------------------------------------


def test_list_without_a_catalog_does_not_create_it(index_path: Path):
    listed = cli("sources", "list")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.startswith(f"no catalog at {index_path}: run `skillmeat-pipeline sources")
    assert len(listed.stdout.splitlines()) == 1
    as_json = cli("sources", "list", "--json")
    assert (as_json.exit_code, json.loads(as_json.stdout)) == (0, [])
    assert f"no catalog at {index_path}" in as_json.stderr
    assert not index_path.exists() and not index_path.parent.exists()


@pytest.mark.usefixtures("dagster_home")
def test_list_says_when_empty_and_shows_the_metadata_statuses(sources_file: Path, index_path: Path):
    catalog = Catalog.from_url(f"sqlite:///{index_path}")
    catalog.migrate()
    empty = cli("sources", "list")
    assert (empty.exit_code, empty.stdout.strip()) == (
        0,
        "the catalog has no sources yet: run `skillmeat-pipeline sources sync` to add the "
        "sources file's",
    )
    sources_file.write_text("sources:\n  - github: a/one\n  - github: b/two\n")
    assert cli("sources", "sync").exit_code == 0
    catalog.record_failure("a/one", "clone failed: the remote hung up\n\x1b[31mdetail")
    catalog.dispose()

    table = cli("sources", "list").stdout.splitlines()
    statuses = {line.split()[0]: line for line in table[1:]}
    assert "failed: clone failed: the remote hung up" in statuses["a/one"]
    assert "\x1b" not in "".join(table)
    assert "never indexed" in statuses["b/two"]
    listed = {s["key"]: s for s in json.loads(cli("sources", "list", "--json").stdout)}
    assert listed["a/one"]["last_status"] == "failed"


def test_sources_check_says_allowed_not_ok(sources_file: Path, index_path: Path):
    sources_file.write_text("sources:\n  - github: anthropics/skills\n")
    checked = cli("sources", "check", "--resolve")
    assert checked.exit_code == 0, checked.output
    results = [line.split("  ")[-1] for line in checked.stdout.splitlines()[1:-1]]
    assert results == ["allowed: a SKILLMEAT_GITHUB_*_URL host (trusted)"]
    assert not index_path.exists()
