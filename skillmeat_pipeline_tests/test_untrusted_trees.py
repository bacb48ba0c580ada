"""Crafted trees pushed to an indexed repository cost their own paths, never the source.

Each case runs `marketplace_index` over a source read by a clone and one read over the GitHub API
(its git side answers 500), against repositories whose tree objects were written byte by byte.
"""

from __future__ import annotations

import io
import json
import logging
import tracemalloc
from pathlib import Path

import pygit2
import pytest
from click.testing import CliRunner

from skillmeat_pipeline.cli import main
from skillmeat_pipeline.cli.output import format_rows
from skillmeat_pipeline.lib.core.untrusted import (
    MAX_TREE_ENTRIES_ENV,
    TreeTooLargeError,
    max_tree_entries,
    path_problem,
    printable,
)
from skillmeat_pipeline.lib.fetch.git.tree import list_tree
from skillmeat_pipeline.lib.observability.logs import configure_logging
from skillmeat_pipeline.testing.git_server import Fault
from skillmeat_pipeline_tests.fixtures_github import RawTree, make_raw_repo, write_raw_tree
from skillmeat_pipeline_tests.fixtures_pipeline import Pipeline

MB = 1024 * 1024
RAW_CONTROLS = ("\x1b", "\r", "\x00", "\udce9")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def skill(name: str) -> bytes:
    return f"---\nname: {name}\ndescription: a skill named {name}\n---\n# {name}\n".encode()


GOOD: RawTree = {
    b"good-1": {b"SKILL.md": skill("good-1")},
    b"good-2": {b"SKILL.md": skill("good-2")},
    b"good-3": {b"SKILL.md": skill("good-3")},
}
GOOD_PATHS = {"skills/good-1", "skills/good-2", "skills/good-3"}

# a skill folder and a file inside a good skill, both named in Latin-1
NAMES: RawTree = {
    b"skills": {
        **GOOD,
        b"good-1": {b"SKILL.md": skill("good-1"), b"r\xe9sum\xe9.md": b"notes\n"},
        b"caf\xe9": {b"SKILL.md": skill("cafe")},
    }
}
# every kind of path a checkout would refuse or a terminal would obey
BAD_NAMES = [b"..", b"a\nb", b"\x1b[31mred", b"x/../y", b"cr\rx"]
PATHS: RawTree = {b"skills": {**GOOD, **{name: {b"SKILL.md": skill("bad")} for name in BAD_NAMES}}}


def bomb(repo: pygit2.Repository) -> RawTree:
    """A handful of objects naming 1.1 million paths: one folder of 1,100 files, listed under
    1,000 names by one more folder."""
    leaf = write_raw_tree(repo, {b"f%04d" % i: b"x" for i in range(1100)})
    return {b"bomb": write_raw_tree(repo, {b"d%03d" % i: leaf for i in range(1000)}), **PATHS}


@pytest.fixture(scope="module")
def hostile(served_root: Path) -> Path:
    """The crafted repositories, each twice: `hostile/X` (cloned) and `hostile/X-api`."""
    for name, tree in (("names", NAMES), ("paths", PATHS), ("bomb", bomb)):
        for slug in (name, f"{name}-api"):
            if not (served_root / "hostile" / f"{slug}.git").exists():
                make_raw_repo(served_root / "hostile" / f"{slug}.git", tree)
    return served_root / "hostile"


def both_paths(pipeline: Pipeline, name: str) -> tuple[str, str]:
    """Source keys of `hostile/name` read by a clone and of `hostile/name-api` over the API."""
    clone_key, api_key = f"clone/{name}", f"hostile/{name}-api"
    pipeline.write_sources(
        [
            {"key": clone_key, "url": pipeline.git.url_for(f"hostile/{name}")},
            {"github": api_key},
            {"key": "neighbour", "url": pipeline.git.url_for("synthetic/repo-02")},
        ]
    )
    pipeline.git.set_fault(api_key, Fault.SERVER_ERROR)
    return clone_key, api_key


def assert_nothing_raw(texts: list[str]) -> None:
    for text in texts:
        assert not any(c in text for c in RAW_CONTROLS), repr(text)


@pytest.mark.usefixtures("hostile")
def test_a_name_that_is_not_utf8_is_a_problem_and_the_rest_is_written(pipeline: Pipeline):
    clone_key, api_key = both_paths(pipeline, "names")
    keys = [clone_key, api_key, "neighbour"]
    for force in (False, True):  # not just once: every run indexes the source
        result = pipeline.materialize(keys, force=force)
        assert result.success
        metadata = pipeline.materializations(result)
        assert metadata[clone_key]["strategy"] != "api"
        assert metadata[api_key]["strategy"] == "api"
        catalog = pipeline.catalog()
        for key in (clone_key, api_key):
            assert metadata[key]["scan_status"] == "scanned"
            entries = {e.path: e for e in catalog.entries(key)}
            assert set(entries) == GOOD_PATHS
            # the file inside a kept skill is that skill's problem
            [problem] = entries["skills/good-1"].problems
            assert "skills/good-1/r\ufffdsum\ufffd.md" in problem
            assert "not valid UTF-8" in problem
            # the skill folder itself is the source's problem
            record = catalog.get_source(key)
            assert record.last_status == "scanned"
            assert record.problems == [
                "path 'skills/caf\ufffd': the name is not valid UTF-8; skipped and everything "
                "below it"
            ]
        assert len(catalog.entries("neighbour")) == 3


@pytest.mark.usefixtures("hostile")
def test_crafted_paths_are_problems_and_never_reach_a_log_raw(pipeline: Pipeline):
    clone_key, api_key = both_paths(pipeline, "paths")
    result = pipeline.materialize([clone_key, api_key, "neighbour"])
    assert result.success
    catalog = pipeline.catalog()
    for key in (clone_key, api_key):
        assert {e.path for e in catalog.entries(key)} == GOOD_PATHS
        problems = catalog.get_source(key).problems
        assert problems == [
            "path 'skills/\\x1b[31mred': the name holds control characters; skipped and "
            "everything below it",
            "path 'skills/..': the path has a '..' segment; skipped and everything below it",
            "path 'skills/a\\nb': the name holds control characters; skipped and everything "
            "below it",
            "path 'skills/cr\\rx': the name holds control characters; skipped and everything "
            "below it",
            "path 'skills/x/../y': the path has a '..' segment; skipped and everything below it",
        ]
    messages = [message for _, message in pipeline.run_log(result)]
    skipped = [m for m in messages if "cannot be indexed" in m]
    assert len(skipped) == 2  # logged once per source
    assert_nothing_raw(messages)
    assert not any("\n" in m for m in skipped)


def test_the_cli_escapes_what_a_repository_named(hostile: Path):
    result = CliRunner().invoke(main, ["detect", str(hostile / "paths.git")])
    assert result.exit_code == 0, result.output
    assert_nothing_raw([result.stdout, result.stderr])
    assert "problem: path 'skills/\\x1b[31mred'" in result.stderr
    assert "problem: path 'skills/a\\nb'" in result.stderr
    assert result.stdout.strip().endswith("3 artifacts: 3 skill")
    table = format_rows(("NAME", "PATH"), [("\x1b[2J", "a\nb\rc\x9b\u202e")])
    assert table.splitlines()[1] == "\\x1b[2J  a\\nb\\rc\\x9b\\u202e"


def test_log_lines_stay_one_line_whatever_a_message_quotes():
    logger = logging.getLogger("skillmeat_pipeline.test_untrusted")
    tree = logging.getLogger("skillmeat_pipeline")
    level = tree.level
    try:
        for log_format in ("json", "text"):
            stream = io.StringIO()
            handler = configure_logging(log_format, stream=stream)
            logger.warning(
                "path %s skipped",
                "skills/\x1b[31mred\n2026-01-01 ERROR forged line\r",
                extra={"record": {"path": "a\nb\udce9"}},
            )
            tree.removeHandler(handler)
            lines = stream.getvalue().splitlines()
            assert len(lines) == 1, lines
            assert_nothing_raw(lines)
            assert "\\x1b[31mred\\n2026-01-01 ERROR forged line\\r" in (
                json.loads(lines[0])["message"] if log_format == "json" else lines[0]
            )
            if log_format == "json":
                assert json.loads(lines[0])["path"] == "a\\nb\\xe9"
    finally:
        tree.setLevel(level)


def test_printable_and_path_rules():
    assert printable("plain/ascii and \u00e9\u00e8 text") == "plain/ascii and \u00e9\u00e8 text"
    assert printable("\x00\x07\t\x7f\x85\u2028\u200b\ufeff") == (
        "\\x00\\x07\\t\\x7f\\x85\\u2028\\u200b\\ufeff"
    )
    assert printable("caf\udce9") == "caf\\xe9"  # a byte kept by surrogateescape
    assert path_problem("skills/pdf/SKILL.md") is None
    assert path_problem("skills/caf\u00e9/SKILL.md") is None
    for bad in ("/abs", "a//b", "a/./b", "..", "a/\u0085", "a\ufffd", "a\udce9", "x" * 4097):
        assert path_problem(bad) is not None, bad


@pytest.mark.usefixtures("hostile")
def test_a_tree_bomb_stops_at_the_entry_bound_and_costs_only_its_source(pipeline: Pipeline):
    clone_key, api_key = both_paths(pipeline, "bomb")
    result = pipeline.materialize([clone_key, api_key, "neighbour"])
    assert not result.success
    assert set(pipeline.materializations(result)) == {"neighbour"}
    catalog = pipeline.catalog()
    for key in (clone_key, api_key):
        record = catalog.get_source(key)
        assert record.last_status == "failed"
        assert f"source {key}: " in record.last_error
        assert f"more than 50000 entries ({MAX_TREE_ENTRIES_ENV})" in record.last_error
    assert len(catalog.entries("neighbour")) == 3


def test_listing_a_tree_bomb_keeps_memory_bounded(tmp_path: Path):
    repo = make_raw_repo(tmp_path / "bomb.git", bomb)
    tree = repo.head.peel(pygit2.Tree)
    tracemalloc.start()
    try:
        with pytest.raises(TreeTooLargeError, match=MAX_TREE_ENTRIES_ENV):
            list_tree(tree, max_entries=50_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the whole listing would take ~800 MB; the walk stops at 50,000 entries
    assert peak < 32 * MB, f"{peak / MB:.0f} MB"
    # the bound counts every entry: the tree outside the bomb alone fits
    assert len(list_tree(tree["skills"].peel(pygit2.Tree), max_entries=16)) == 16


def test_the_tree_entry_limit_comes_from_the_environment() -> None:
    assert max_tree_entries({}) == 50_000
    assert max_tree_entries({MAX_TREE_ENTRIES_ENV: " 12 "}) == 12
    for bad in ("0", "-3", "1.5", "many"):
        with pytest.raises(ValueError, match=MAX_TREE_ENTRIES_ENV):
            max_tree_entries({MAX_TREE_ENTRIES_ENV: bad})
